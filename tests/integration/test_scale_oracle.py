"""Right answers at scale: every pipeline shape the README documents, over a realistic
log, against an independent Python oracle (tests/integration/scale.py).

One log for all shapes (they read the same topics, each with its own job and consumer
group): 200,000 valid authorizations over three days in three partitions of uneven
volume, ~0.4% broken events and some wrong-clock events mixed in (all with event times
days ahead, which used to push the watermark on and drop most of the windows' input),
settlements for the join; one partition is produced only after the pipelines went live.

Findings this guards (each failed before its fix):
- windows lost most of their input to dead-lettered and wrong-clock events' timestamps;
- invalid UTF-8 was decoded into a valid-looking event; text with NUL broke the sink;
- a first deploy reported success (and created its alias) before it had caught up.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import AssetsDefinition, DagsterInstance, materialize

from kappa_orch import pipeline_assets
from kappa_orch.dagster.assets import alias_key, version_key
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.lifecycle.batch import run_batch
from kappa_orch.lifecycle.services import Services
from kappa_orch.lifecycle.status import pipeline_status
from kappa_orch.registry import store as registry
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack.config import StackConfig
from tests.integration import scale
from tests.integration.at_scale import await_rows, expected, produce, serving_rows
from tests.integration.platform import Platform, isolated_platform, resources_for

pytestmark = pytest.mark.integration

EVENTS = 200_000


@pytest.fixture(scope="module")
def log() -> scale.ScaleLog:
    return scale.scale_log(EVENTS)


@pytest.fixture
def platform(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> Iterator[Platform]:
    with isolated_platform(stack, kafka, flink, tmp_path) as isolated:
        yield isolated


def test_every_pipeline_shape_matches_the_oracle_at_scale(
    platform: Platform, log: scale.ScaleLog, kafka: KafkaResource, flink: FlinkResource
) -> None:
    started = time.monotonic()
    pipelines = platform.pipelines()
    warehouse = platform.warehouse
    auth_topic = platform.topic("payments.authorizations")
    resources = resources_for(kafka, flink, warehouse)
    volumes = {p: len(r) for p, r in log.auth_log.records.items()}
    assert max(volumes.values()) > 1.3 * min(volumes.values()), volumes  # skewed partitions
    kinds = Counter(log.auth_log.dead.values())
    assert len(kinds) == len(scale.BROKEN_KINDS) + 1 and kinds["wrong_clock"] >= 20, kinds

    # partitions 0 and 1 and the settlements are in the log; partition 2 comes later
    produce(kafka, auth_topic, log.auth_log, [0, 1])
    produce(kafka, platform.topic("payments.settlements"), log.settlement_log, [0, 1, 2])
    streaming = [
        a
        for a in pipeline_assets(list(pipelines.values()))
        if isinstance(a, AssetsDefinition) and not a.partitions_def
    ]
    first = materialize(streaming, resources=resources, instance=DagsterInstance.ephemeral())
    assert first.success

    # a first deploy is gated like any other version: when the run succeeded, the alias
    # holds everything the log held (before the fix: a few thousand rows, gate passed)
    early = [a for a in log.authorizations if scale.partition_of(a["account"]) in (0, 1)]
    assert serving_rows(warehouse, pipelines["daily_spend"]) == scale.daily_spend(early)
    with warehouse.connect() as conn:
        swaps = {r["pipeline"]: r for name in pipelines for r in registry.swap_history(conn, name)}
    assert {s["reason"] for s in swaps.values()} == {"first deploy"}
    assert sorted(swaps) == sorted(pipelines)

    produce(kafka, auth_topic, log.auth_log, [2])
    await_rows(warehouse, pipelines, expected(log, log.authorizations))
    live_s = time.monotonic() - started

    # nothing was dropped as late, and status says so per version
    statuses = pipeline_status(list(pipelines.values()), Services(kafka, flink, warehouse))
    for status in statuses:
        [live] = status.versions
        assert live.late_total == 0, (status.pipeline, live.late_records)
        assert status.in_sync and not status.warnings
    # every broken event went to the dead letters, partition by partition (daily_spend
    # reads every field of an authorization, so each broken kind is broken for it)
    with warehouse.connect() as conn:
        counts = registry.input_counts_of(conn, "daily_spend", 1)
    dead_per_partition = Counter(p for p, _ in log.auth_log.dead)
    assert {c.kafka_partition: c.dead_lettered for c in counts} == dict(dead_per_partition)
    assert {c.kafka_partition: c.records for c in counts} == volumes
    letters = kafka.consume(platform.dead_letter_topic("daily_spend"), max_records=len(log.auth_log.dead))
    by_offset = {
        (letter["source_partition"], letter["source_offset"]): letter for letter in map(_letter, letters)
    }
    assert set(by_offset) == set(log.auth_log.dead)
    for key, kind in log.auth_log.dead.items():
        letter = by_offset[key]
        if kind == "wrong_clock":
            assert "ahead of the record's Kafka timestamp" in letter["reason"]
        elif kind == "not_utf8":
            assert letter["reason"] == "payload is not valid UTF-8"
            assert letter["payload_encoding"] == "base64"
        elif kind == "nul":
            assert letter["reason"] == "field account contains a NUL character (PostgreSQL refuses it)"

    # a replay from the earliest offsets of the whole log (partitions read at their own
    # speeds) into a new version: the same windows as the oracle
    spec_path = platform.specs / "merchant_risk.yaml"
    raw = yaml.safe_load(spec_path.read_text())
    raw["sources"][0]["event_time"]["watermark_delay"] = "6s"
    spec_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    replayed = platform.pipelines()["merchant_risk"]
    replay = materialize(
        pipeline_assets(list(platform.pipelines().values())),
        selection=[version_key(replayed.spec), alias_key(replayed.spec)],
        resources=resources,
        instance=DagsterInstance.ephemeral(),
    )
    assert replay.success
    assert serving_rows(warehouse, replayed) == expected(log, log.authorizations, 6_000)["merchant_risk"]
    late = [e for e in replay.get_asset_check_evaluations() if e.check_name == "no_late_records"]
    assert [e.passed for e in late] == [True]

    # the batch table, day by day, equals the oracle's days
    days = [date(2026, 3, 1) + timedelta(days=i) for i in range(3)]
    batch = run_batch(pipelines["daily_spend"], days, Services(kafka, flink, warehouse))
    table = f"{pipelines['daily_spend'].spec.target.schema_name}.{pipelines['daily_spend'].spec.batch_table}"
    batch_rows = serving_rows(warehouse, pipelines["daily_spend"], table)
    assert batch_rows == scale.daily_spend(log.authorizations)
    assert sum(batch.rows_per_day.values()) == len(batch_rows)
    print(
        f"\noracle at scale: {log.auth_log.total + log.settlement_log.total:,} records "
        f"({len(log.authorizations):,} valid authorizations, {len(log.auth_log.dead):,} dead letters, "
        f"{len(log.settlements):,} settlements), partitions {volumes}; rows compared: "
        + ", ".join(f"{n} {len(rows):,}" for n, rows in expected(log, log.authorizations).items())
        + f", batch {len(batch_rows):,}; live {live_s:.0f}s, total {time.monotonic() - started:.0f}s"
    )


def _letter(record: Any) -> dict[str, Any]:
    return dict(json.loads(record.value))
