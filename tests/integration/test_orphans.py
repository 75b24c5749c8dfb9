"""Jobs the registry does not know are found, adopted or cancelled, and shown.

Found: a kill between submitting a job and recording its id (2 of 2 trials) left a second
`kappa:<p>:v<N>` job running after the re-run, holding a slot even after that version was
retired, invisible to `status`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import update

from assets.sample_events import sample_events
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.engine.protocol import ACTIVE_JOB_STATES
from kappa_orch.registry import store as registry
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack.config import StackConfig
from tests.integration.platform import KAPPA, cli_env, isolated_platform, produce_authorizations

pytestmark = pytest.mark.integration


def test_a_job_the_registry_does_not_know_is_adopted_or_cancelled_and_shown(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> None:
    with isolated_platform(stack, kafka, flink, tmp_path, only=["daily_spend"]) as platform:
        produce_authorizations(platform, kafka, sample_events(5_000).authorizations, event_timestamps=True)
        env = cli_env(platform, stack)

        def kappa(*args: str) -> str:
            done = subprocess.run([KAPPA, *args], env=env, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, done.stdout + done.stderr
            return done.stdout + done.stderr

        kappa("deploy", "daily_spend")
        with platform.warehouse.begin() as conn:
            [row] = registry.pipeline_versions(conn, "daily_spend")
            job = row.flink_job_id or ""
            # the registry as a run killed between submitting the job and recording it left it
            conn.execute(
                update(registry.versions)
                .where(registry.versions.c.pipeline == "daily_spend", registry.versions.c.version == 1)
                .values(flink_job_id=None)
            )
        name = flink.job_name("kappa:daily_spend:v1")

        def alive() -> list[str]:
            return sorted(
                j.job_id for j in flink.list_jobs() if j.name == name and j.state in ACTIVE_JOB_STATES
            )

        # the re-run adopts the job instead of submitting a second one
        out = kappa("deploy", "daily_spend")
        assert f"daily_spend: adopted job {job} (daily_spend v1, RUNNING)" in out
        with platform.warehouse.begin() as conn:
            [row] = registry.pipeline_versions(conn, "daily_spend")
        assert (row.flink_job_id, row.state) == (job, registry.LIVE)
        assert alive() == [job]

        # a second job under the version's name: named by status, cancelled by repair
        generator = "'connector' = 'datagen', 'rows-per-second' = '5'"
        second = flink.submit_sql(
            setup=[
                f"CREATE TEMPORARY TABLE `g` (`n` BIGINT) WITH ({generator})",
                "CREATE TEMPORARY TABLE `b` (`n` BIGINT) WITH ('connector' = 'blackhole')",
            ],
            inserts=["INSERT INTO `b` SELECT `n` FROM `g`"],
            job_name="kappa:daily_spend:v1",
        )
        assert alive() == sorted([job, second])
        status = kappa("status", "daily_spend")
        assert (
            f"job {second} (daily_spend v1, RUNNING) runs unknown to the registry, holding a task slot"
            in status
        )
        assert "kappa-orch repair daily_spend cancels it" in status
        out = kappa("repair", "daily_spend")
        assert (
            f"daily_spend: cancelled job {second} (daily_spend v1, RUNNING): the registry does not know it"
            in out
        )
        flink.wait_for_state(second, {"CANCELED"}, timeout_s=60)
        assert alive() == [job]
        assert "unknown to the registry" not in kappa("status", "daily_spend")
