"""Batch tables on the real stack: a day of the batch table equals the streaming table's
rows for that day; re-running a day changes nothing; late events are picked up by
re-running their day, which the late-data sensor requests; a retention gap is refused
before any work."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import AssetsDefinition, DagsterInstance, build_sensor_context, materialize
from sqlalchemy import text

from assets.sample_events import sample_events
from kappa_orch import late_data_sensor, pipeline_assets
from kappa_orch.dagster.assets import batch_key
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.errors import KappaError
from kappa_orch.lifecycle.batch import run_batch
from kappa_orch.lifecycle.services import Services
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.spec.model import LoadedPipeline
from kappa_orch.stack.config import StackConfig
from tests.integration.daily_spend import expected, run, serving, wait_serving
from tests.integration.platform import (
    Platform,
    isolated_platform,
    own_jobs,
    produce_authorizations,
    resources_for,
)

pytestmark = pytest.mark.integration

DAYS = [date(2026, 1, d) for d in range(1, 5)]


@pytest.fixture
def platform(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> Iterator[Platform]:
    with isolated_platform(stack, kafka, flink, tmp_path, only=["daily_spend"]) as platform:
        # four days, one authorization every 90 s; record timestamps are the event times
        events = sample_events(3_800, step_ms=90_000).authorizations
        produce_authorizations(platform, kafka, events, event_timestamps=True)
        yield platform


def batch_rows(platform: Platform, day: date) -> set[tuple[Any, ...]]:
    with platform.warehouse.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT account, spend_day, authorizations, spend_cents FROM analytics.daily_spend_daily "
                "WHERE spend_day = :day"
            ),
            {"day": day},
        )
        return {tuple(r) for r in rows}


def stream(
    platform: Platform, pipeline: LoadedPipeline, kafka: KafkaResource, flink: FlinkResource
) -> set[Any]:
    """Deploy the streaming version and return its rows once it serves every event."""
    assert run(platform, pipeline, kafka, flink).success
    wait_serving(platform, expected(platform.events, {"approved"}))  # type: ignore[attr-defined]
    return serving(platform)


def test_batch_days_equal_the_stream_and_rerun_idempotently(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource
) -> None:
    pipeline = platform.pipelines()["daily_spend"]
    streaming = stream(platform, pipeline, kafka, flink)

    result = run_batch(pipeline, DAYS, Services(kafka, flink, platform.warehouse))
    assert sorted(result.rows_per_day) == DAYS
    for day in DAYS:
        assert batch_rows(platform, day) == {r for r in streaming if r[1] == day}
        assert result.rows_per_day[day] == len(batch_rows(platform, day)) > 0

    # running a day again leaves the same rows
    before = batch_rows(platform, DAYS[1])
    again = run_batch(pipeline, [DAYS[1]], Services(kafka, flink, platform.warehouse))
    assert batch_rows(platform, DAYS[1]) == before
    assert again.rows_per_day == {DAYS[1]: len(before)}

    # a late event for day 1 arrives after everything else: re-running day 1 includes it
    late_ts = int(datetime(2026, 1, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)
    late = {"auth_id": "late-1", "account": "acct-late", "merchant": "m-000", "amount_cents": 777,
            "status": "approved", "ts": late_ts}  # fmt: skip
    kafka.produce(platform.topic("payments.authorizations"), [late], timestamp_ms=lambda e: e["ts"])  # type: ignore[index]
    run_batch(pipeline, [DAYS[0]], Services(kafka, flink, platform.warehouse))
    assert ("acct-late", DAYS[0], 1, 777) in batch_rows(platform, DAYS[0])


def test_a_retention_gap_is_refused_before_any_work(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource
) -> None:
    pipeline = platform.pipelines()["daily_spend"]
    topic = platform.topic("payments.authorizations")
    # what retention does: the oldest records of every partition are deleted
    kafka.delete_records_before(topic, {p: 100 for p in kafka.end_offsets(topic)})
    jobs_before = own_jobs(flink)
    with pytest.raises(KappaError) as error:
        run_batch(pipeline, [DAYS[0]], Services(kafka, flink, platform.warehouse))
    message = error.value.problem
    assert f"topic '{topic}' partition 0: records before offset 100 were deleted by retention" in message
    assert "the range needs 2026-01-01 00:00 on" in message
    assert "declare a bootstrap snapshot table on the source" in (error.value.fix or "")
    assert own_jobs(flink) == jobs_before
    with platform.warehouse.connect() as conn:
        exists = conn.execute(text("SELECT to_regclass('analytics.daily_spend_daily')")).scalar()
    assert exists is None  # nothing was created
    # days the log still holds are fine
    held_from = min(t for t in kafka.first_timestamps(topic).values() if t is not None)
    later = datetime.fromtimestamp(held_from / 1000, UTC).date() + timedelta(days=1)
    assert run_batch(pipeline, [later], Services(kafka, flink, platform.warehouse)).rows_per_day[later] > 0


def test_late_data_sensor_requests_exactly_the_late_days(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource
) -> None:
    pipeline = platform.pipelines()["daily_spend"]
    run_batch(pipeline, DAYS, Services(kafka, flink, platform.warehouse))
    sensor = late_data_sensor([pipeline])
    resources = {"kafka": kafka, "warehouse": platform.warehouse}

    # late events for two computed days, over every partition (accounts pick them), written
    # now: their Kafka timestamps are their arrival, days after their event time (found:
    # the sensor judged the day by the Kafka timestamp and requested nothing), before the
    # sensor's first tick (found: a first tick started at the topic's end)
    def late(i: int, day: date) -> dict[str, Any]:
        ts = int(datetime(day.year, day.month, day.day, 8, i, tzinfo=UTC).timestamp() * 1000)
        return {"auth_id": f"late-{day}-{i}", "account": f"acct-late-{i}", "merchant": "m-001",
                "amount_cents": 1000 + i, "status": "approved", "ts": ts}  # fmt: skip

    late_events = [late(i, day) for day in (DAYS[0], DAYS[2]) for i in range(30)]
    late_events.append(dict(late(45, DAYS[1]), ts="yesterday"))  # a dead letter: changes no day
    topic = platform.topic("payments.authorizations")
    kafka.produce(topic, late_events, key=lambda e: e["account"])  # type: ignore[index]
    assert len({r.partition for r in kafka.consume(topic, max_records=10_000, timeout_s=10)}) == 3

    with build_sensor_context(resources=resources) as context:
        result = sensor(context)
        cursor = result.cursor  # type: ignore[union-attr]
    requests = result.run_requests  # type: ignore[union-attr]
    assert sorted(r.partition_key for r in requests) == [DAYS[0].isoformat(), DAYS[2].isoformat()]
    assert all(r.asset_selection == [batch_key(pipeline.spec)] for r in requests)
    with build_sensor_context(resources=resources, cursor=cursor) as context:
        assert sensor(context).run_requests == []  # type: ignore[union-attr]  # asked once

    # the requested runs: those partitions of the batch asset, equal to the oracle's days
    for request in requests:
        done = materialize(
            [a for a in pipeline_assets([pipeline]) if isinstance(a, AssetsDefinition) and a.partitions_def],
            partition_key=request.partition_key,
            resources=resources_for(kafka, flink, platform.warehouse),
            instance=DagsterInstance.ephemeral(),
        )
        assert done.success
    valid = [e for e in late_events if isinstance(e["ts"], int)]
    oracle = expected(platform.events + valid, {"approved"})  # type: ignore[attr-defined]
    for day in (DAYS[0], DAYS[2]):
        assert batch_rows(platform, day) == {r for r in oracle if r[1] == day}
    # recomputed: nothing is late any more, also for a sensor starting afresh (no cursor)
    with build_sensor_context(resources=resources) as context:
        assert sensor(context).run_requests == []  # type: ignore[union-attr]


def test_a_bootstrap_snapshot_fills_the_days_the_log_lost(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource
) -> None:
    pipeline = platform.pipelines()["daily_spend"]
    streaming = stream(platform, pipeline, kafka, flink)

    # retention deletes most of the first day from every partition (the topic keeps its
    # last hour: the guard cannot tell a held-from time after `until` from a real gap) ...
    topic = platform.topic("payments.authorizations")
    until = DAYS[1]
    until_ms = int(datetime(until.year, until.month, until.day, tzinfo=UTC).timestamp() * 1000)
    cut = {}
    for partition, (low, high) in kafka.watermarks(topic).items():
        found = kafka.read_timestamps(topic, partition, low, high)
        cut[partition] = next(offset for offset, ts in found if ts >= until_ms - 3_600_000)
    kafka.delete_records_before(topic, cut)
    # ... after it was archived into a snapshot table: the events before `until`
    columns = ["auth_id", "account", "merchant", "amount_cents", "status", "ts"]
    archived = [e for e in platform.events if e["ts"] < until_ms]  # type: ignore[attr-defined]
    with platform.warehouse.begin() as conn:
        conn.execute(text("CREATE SCHEMA archive"))
        conn.execute(
            text(
                "CREATE TABLE archive.auth_snapshot (auth_id TEXT, account TEXT, merchant TEXT, "
                "amount_cents BIGINT, status TEXT, ts BIGINT)"
            )
        )
        conn.execute(
            text(f"INSERT INTO archive.auth_snapshot VALUES ({', '.join(':' + c for c in columns)})"),
            [{c: e[c] for c in columns} for e in archived],
        )

    spec_file = platform.specs / "daily_spend.yaml"
    raw = yaml.safe_load(spec_file.read_text())
    raw["sources"][0]["bootstrap"] = {"table": "archive.missing", "until": until.isoformat()}
    spec_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    jobs_before = own_jobs(flink)
    with pytest.raises(KappaError) as error:
        run_batch(platform.pipelines()["daily_spend"], DAYS, Services(kafka, flink, platform.warehouse))
    assert "the bootstrap snapshot archive.missing of source 'authorizations'" in error.value.problem
    assert own_jobs(flink) == jobs_before  # refused before any work

    raw["sources"][0]["bootstrap"]["table"] = "archive.auth_snapshot"
    spec_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    with_snapshot = platform.pipelines()["daily_spend"]
    result = run_batch(with_snapshot, DAYS, Services(kafka, flink, platform.warehouse))
    for day in DAYS:  # the first day from the snapshot, the others from the topic
        assert batch_rows(platform, day) == {r for r in streaming if r[1] == day}
        assert result.rows_per_day[day] > 0
