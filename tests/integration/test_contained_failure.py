"""One pipeline's failure stays in its pipeline, on the real stack: two pipelines live on one
TaskManager; the database then refuses one job's writes. That job fails (and restarts, and
fails) with the cause in `status`; the TaskManager and the other pipeline's job keep
running, and the other pipeline keeps serving new events.

Found: a JDBC sink error in one job (`permission denied for table input_counts`) ended in
`FATAL - exception in exception handler of task ... Sink` (the JDBC sink's close threw while
the task was failing) and the TaskManager shut itself down, taking every other pipeline's
live job with it."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from assets.sample_events import sample_events
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.registry import store as registry
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack.config import StackConfig
from kappa_orch.stack.postgres import PostgresService
from tests.integration.platform import KAPPA, cli_env, isolated_platform, produce_authorizations

pytestmark = pytest.mark.integration


def test_a_job_whose_writes_are_refused_fails_alone(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> None:
    with isolated_platform(stack, kafka, flink, tmp_path, only=["daily_spend", "account_latest"]) as platform:
        produce_authorizations(platform, kafka, sample_events(3_000).authorizations, event_timestamps=True)
        env = cli_env(platform, stack)
        done = subprocess.run(
            [KAPPA, "deploy", "--all"], env=env, capture_output=True, text=True, timeout=900
        )
        assert done.returncode == 0, done.stdout + done.stderr
        with platform.warehouse.begin() as conn:
            jobs = {r.pipeline: r.flink_job_id or "" for r in registry.all_versions(conn)}
            refused_role = platform.warehouse.job_role(conn, "daily_spend:v1")
        taskmanagers = len(flink._call("GET", flink.rest_url, "/taskmanagers")["taskmanagers"])

        # the database refuses daily_spend's writes from now on
        database = platform.warehouse_url.rsplit("/", 1)[1]
        admin = create_engine(PostgresService(stack).admin_url(database))
        with admin.begin() as conn:
            conn.execute(
                text(f'REVOKE INSERT, UPDATE, DELETE ON analytics.daily_spend__v1 FROM "{refused_role}"')
            )
        admin.dispose()
        more = sample_events(
            600, seed=41, id_prefix="more", start_ms=sample_events(3_000).authorizations[-1]["ts"]
        )
        produce_authorizations(platform, kafka, more.authorizations, event_timestamps=True)

        # daily_spend's job fails with the refusal as its cause ...
        deadline = time.monotonic() + 120
        cause = ""
        while "permission denied" not in cause and time.monotonic() < deadline:
            cause = flink.job_root_cause(jobs["daily_spend"]) or ""
            time.sleep(2)
        assert "permission denied for table daily_spend__v1" in cause
        time.sleep(15)  # long enough for the failing task's close to have run (and, before, the TM to die)
        # ... while the TaskManager and account_latest's job run on, and serve the new events
        assert len(flink._call("GET", flink.rest_url, "/taskmanagers")["taskmanagers"]) == taskmanagers
        assert flink.job_state(jobs["account_latest"]) == "RUNNING"
        newest = {e["account"]: e["auth_id"] for e in sorted(more.authorizations, key=lambda e: e["ts"])}
        deadline = time.monotonic() + 120
        served: dict[str, str] = {}
        while time.monotonic() < deadline:
            with platform.warehouse.connect() as conn:
                served = dict(
                    conn.execute(text("SELECT account, auth_id FROM analytics.account_latest")).all()
                )
            if all(served.get(a) == i for a, i in newest.items()):
                break
            time.sleep(2)
        assert all(served.get(a) == i for a, i in newest.items())
        status = subprocess.run([KAPPA, "status", "daily_spend"], env=env, capture_output=True, text=True)
        assert "permission denied" in status.stdout, status.stdout
