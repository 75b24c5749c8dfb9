"""Rollback, roll forward and retire on the real stack, a lost live job resumed from its
checkpoint, and readers that query the alias across swaps (daily_spend alone)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import DagsterInstance, build_sensor_context
from sqlalchemy import create_engine, text

from assets.sample_events import sample_events
from kappa_orch import retire_job, retire_sensor
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.lifecycle.services import Services
from kappa_orch.lifecycle.swap import SwapRequest, swap
from kappa_orch.registry import claims
from kappa_orch.registry import store as registry
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack.config import StackConfig
from tests.integration.daily_spend import (
    EVENTS,
    cli,
    daily_spend_platform,
    deploy_v1,
    expected,
    run,
    serving,
    swaps,
    versions,
    wait_serving,
)
from tests.integration.platform import (
    ALL_STATUSES,
    ORIGINAL,
    Platform,
    resources_for,
)

pytestmark = pytest.mark.integration

TOTALS = "SELECT count(*), sum(authorizations), sum(spend_cents) FROM analytics.daily_spend"


@pytest.fixture
def platform(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> Iterator[Platform]:
    with daily_spend_platform(stack, kafka, flink, tmp_path) as platform:
        yield platform


def said(process: Any, text: str, timeout_s: float = 120.0) -> str:
    """The process's output up to the line holding `text` (it must still run by then)."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while not any(text in line for line in lines):
        assert process.poll() is None and time.monotonic() < deadline, "".join(lines)
        lines.append(process.stdout.readline())
    return "".join(lines)


def test_rollback_and_retired_versions(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource, stack: StackConfig
) -> None:
    deploy_v1(platform, kafka, flink)
    changed = platform.set_sql(
        "daily_spend", platform.pipelines()["daily_spend"].sql_text.replace(ORIGINAL, ALL_STATUSES)
    )
    assert run(platform, changed, kafka, flink).success
    v1_rows = expected(platform.events, {"approved"})  # type: ignore[attr-defined]
    v2_rows = expected(platform.events, {"approved", "declined"})  # type: ignore[attr-defined]

    # found: a rollback between a reprocess's gate and its swap was undone a second later
    # by that swap. A reprocess holds the claim through its swap; a rollback waits for it
    in_flight = "run-elsewhere@another-host:1"
    claims.acquire(platform.warehouse, "daily_spend", claims.Claimant(in_flight), fingerprint="f", log=print)
    rollback = cli(platform, stack, "rollback", "daily_spend")
    # until it says it waits (found: a fixed 8 s sleep passed before a CLI started under a
    # loaded CI machine had even asked for the claim)
    output = said(rollback, "waiting for the reprocess run run-elsewhere@another-host:1 to finish")
    assert serving(platform) == v2_rows  # waiting, nothing moved
    claims.release(platform.warehouse, pipeline="daily_spend", owner=in_flight)
    rest, _ = rollback.communicate(timeout=60)
    assert rollback.returncode == 0, output + rest
    assert serving(platform) == v1_rows
    assert swaps(platform)[-1]["reason"] == "rollback"
    forward = cli(platform, stack, "rollback", "daily_spend", "--to", "2")
    assert forward.wait(timeout=60) == 0
    assert serving(platform) == v2_rows

    # past its grace period, the retire sensor requests the retire job for v1, which retires it
    spec_file = platform.specs / "daily_spend.yaml"
    raw = yaml.safe_load(spec_file.read_text())
    raw["retire"] = {"grace": "1s"}
    spec_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    changed = platform.pipelines()["daily_spend"]
    time.sleep(1.5)
    v1_job = versions(platform)[1].flink_job_id or ""
    with build_sensor_context(resources={"warehouse": platform.warehouse}) as context:
        [request] = retire_sensor([changed])(context).run_requests  # type: ignore[union-attr]
    retired = retire_job([changed]).execute_in_process(
        run_config=request.run_config,
        resources=resources_for(kafka, flink, platform.warehouse),
        instance=DagsterInstance.ephemeral(),
    )
    assert retired.success
    assert versions(platform)[1].state == registry.RETIRED
    assert flink.job_state(v1_job) == "CANCELED"
    with platform.warehouse.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('analytics.daily_spend__v1')")).scalar() is None
    with build_sensor_context(resources={"warehouse": platform.warehouse}) as context:
        assert not getattr(retire_sensor([changed])(context), "run_requests", None)
    refused = cli(platform, stack, "rollback", "daily_spend", "--to", "1")
    output, _ = refused.communicate(timeout=60)
    assert refused.returncode == 1
    assert "v1 of 'daily_spend' is retired" in output
    assert serving(platform) == v2_rows


def test_a_live_version_whose_job_was_lost_resumes_from_its_checkpoint(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource, stack: StackConfig
) -> None:
    deploy_v1(platform, kafka, flink)
    [v1] = versions(platform).values()
    time.sleep(6)  # let a checkpoint complete after the table matched
    flink.cancel(v1.flink_job_id or "")
    more = sample_events(5_000, seed=99, start_ms=1_767_225_600_000 + EVENTS * 60_000, step_ms=60_000)
    kafka.produce(platform.topic("payments.authorizations"), more.authorizations, key=lambda e: e["account"])  # type: ignore[index]

    # where it resumes from is what Flink's REST API says of the cancelled job
    result = run(platform, platform.pipelines()["daily_spend"], kafka, flink)
    assert result.success
    [deployed] = [
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if "action" in e.materialization.metadata
    ]
    assert deployed["action"].value == "redeploy"
    # the restored state counts the first events once and adds the new ones
    wait_serving(platform, expected(platform.events + more.authorizations, {"approved"}))  # type: ignore[attr-defined]
    [row] = versions(platform).values()
    assert row.state == registry.LIVE and row.flink_job_id != v1.flink_job_id
    restored = flink._call("GET", flink.rest_url, f"/jobs/{row.flink_job_id}/checkpoints")
    assert v1.flink_job_id in restored["latest"]["restored"]["external_path"]


def test_readers_see_one_whole_version_across_swaps(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource
) -> None:
    deploy_v1(platform, kafka, flink)
    changed = platform.set_sql(
        "daily_spend", platform.pipelines()["daily_spend"].sql_text.replace(ORIGINAL, ALL_STATUSES)
    )
    assert run(platform, changed, kafka, flink).success
    # both versions are caught up and no events arrive: each has one fixed answer
    answers = {}
    with platform.warehouse.connect() as conn:
        for version in (1, 2):
            answers[version] = tuple(conn.execute(text(f"{TOTALS}__v{version}")).one())
    assert answers[1] != answers[2]

    stop = threading.Event()
    seen: list[tuple[Any, ...]] = []
    errors: list[str] = []

    def reader() -> None:
        engine = create_engine(platform.warehouse_url)
        with engine.connect() as conn:
            while not stop.is_set():
                try:
                    seen.append(tuple(conn.execute(text(TOTALS)).one()))
                    conn.commit()
                except Exception as exc:
                    errors.append(repr(exc))
                    conn.rollback()
        engine.dispose()

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    swaps_done = 0
    for target in (1, 2, 1, 2, 1, 2):
        time.sleep(0.3)
        assert swap(
            changed,
            Services(kafka, flink, platform.warehouse),
            SwapRequest(to_version=target, reason="rollback"),
        ).swapped
        swaps_done += 1
    time.sleep(0.3)
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert swaps_done == 6 and len(seen) > 50
    assert set(seen) <= {answers[1], answers[2]}
    assert set(seen) == {answers[1], answers[2]}

    # found: swaps made readers wait (DROP VIEW queued behind running reads, new reads
    # behind it). v2 joined the view when it passed its gate, so a swap between the two is
    # a registry update: it completes while a reader holds the view open in a transaction,
    # which a DDL on the view could not (it would wait for that reader)
    engine = create_engine(platform.warehouse_url)
    with engine.connect() as reader:
        assert tuple(reader.execute(text(TOTALS)).one()) == answers[2]  # the reader's lock is held
        done = threading.Event()
        swapper = threading.Thread(
            target=lambda: (
                swap(
                    changed,
                    Services(kafka, flink, platform.warehouse),
                    SwapRequest(to_version=1, reason="rollback"),
                ),
                done.set(),
            )
        )
        swapper.start()
        swapper.join(timeout=60)
        assert done.is_set(), "the swap waited for a reader: it took a lock on the view"
        reader.commit()
        assert tuple(reader.execute(text(TOTALS)).one()) == answers[1]
    engine.dispose()
    with platform.warehouse.connect() as conn:
        view = conn.execute(text("SELECT pg_get_viewdef('analytics.daily_spend'::regclass)")).scalar_one()
    assert "daily_spend__v1" in view and "daily_spend__v2" in view and "UNION ALL" in view


def alias_columns(platform: Platform) -> list[str]:
    with platform.warehouse.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'analytics' AND table_name = 'daily_spend' ORDER BY ordinal_position"
            )
        )
        return [r[0] for r in rows]


def test_rollback_and_roll_forward_across_an_added_column(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource
) -> None:
    # found: `rollback --to 1` after a reprocess that added a column failed with
    # `column "<new column>" does not exist`, and a roll-forward with the old spec in
    # place served the new version without its new column
    deploy_v1(platform, kafka, flink)
    narrow = ["account", "spend_day", "authorizations", "spend_cents"]
    assert alias_columns(platform) == narrow
    spec_file = platform.specs / "daily_spend.yaml"
    old_yaml = spec_file.read_text()
    old_sql = platform.pipelines()["daily_spend"].sql_text
    raw = yaml.safe_load(old_yaml)
    raw["target"]["columns"].append({"name": "max_cents", "type": "BIGINT"})
    spec_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    wider = platform.set_sql(
        "daily_spend",
        old_sql.replace(
            "SUM(amount_cents) AS spend_cents",
            "SUM(amount_cents) AS spend_cents,\n  MAX(amount_cents) AS max_cents",
        ),
    )
    assert run(platform, wider, kafka, flink).success
    assert alias_columns(platform) == [*narrow, "max_cents"]

    # back to v1 with the wider spec in place: v1's own columns
    swap(wider, Services(kafka, flink, platform.warehouse), SwapRequest(to_version=1, reason="rollback"))
    assert alias_columns(platform) == narrow
    assert serving(platform) == expected(platform.events, {"approved"})  # type: ignore[attr-defined]

    # forward to v2 with the old spec back in place: v2's own columns, max_cents included
    spec_file.write_text(old_yaml)
    old = platform.set_sql("daily_spend", old_sql)
    swap(old, Services(kafka, flink, platform.warehouse), SwapRequest(to_version=2, reason="rollback"))
    assert alias_columns(platform) == [*narrow, "max_cents"]
    with platform.warehouse.connect() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM analytics.daily_spend WHERE max_cents > 0")).scalar_one()
            > 0
        )
