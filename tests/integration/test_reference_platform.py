"""The reference pipelines deployed through Dagster on the real stack, read back through
their aliases, and watched by the observation sensor.

Isolation (tests/integration/platform.py): the pipelines read suffixed copies of the
topics and write into a database of their own, so the test neither sees nor disturbs
a demo running on the same stack.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetsDefinition, DagsterInstance, build_sensor_context, materialize
from sqlalchemy import text

from assets.sample_events import sample_events
from kappa_orch import pipeline_assets, stream_observation_sensor
from kappa_orch.dagster.assets import topic_key, version_key
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.model import LoadedPipeline
from kappa_orch.stack.config import StackConfig
from tests.integration import scale
from tests.integration.platform import isolated_platform, resources_for

pytestmark = pytest.mark.integration

EVENTS = 5_000
STEP_MS = 60_000  # one authorization a minute: about 3.5 days, 84 hourly windows
WATERMARK_MS = 5_000


@pytest.fixture
def platform(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> Iterator[tuple[list[LoadedPipeline], WarehouseResource]]:
    with isolated_platform(stack, kafka, flink, tmp_path) as isolated:
        yield list(isolated.pipelines().values()), isolated.warehouse


def expected_rows(
    auths: list[dict[str, Any]], settlements: list[dict[str, Any]], watermark_ms: int
) -> dict[str, set[tuple[Any, ...]]]:
    """What each alias must serve, computed from the events alone (the scale tests' oracle)."""
    return {
        "account_latest": scale.account_latest(auths),
        "daily_spend": scale.daily_spend(auths),
        # a window is written once the watermark passes its end
        "merchant_risk": scale.merchant_risk(auths, watermark_ms),
        "auth_settlement": scale.auth_settlement(auths, settlements),
    }


def serving_rows(warehouse: WarehouseResource, pipeline: LoadedPipeline) -> set[tuple[Any, ...]]:
    columns = ", ".join(c.name for c in pipeline.spec.target.columns)
    with warehouse.connect() as conn:
        return {tuple(r) for r in conn.execute(text(f"SELECT {columns} FROM {pipeline.spec.target.alias}"))}


def test_reference_pipelines_serve_exact_rows_and_report_lag(
    platform: tuple[list[LoadedPipeline], WarehouseResource], kafka: KafkaResource, flink: FlinkResource
) -> None:
    pipelines, warehouse = platform
    by_name = {p.name: p for p in pipelines}
    auth_topic = by_name["daily_spend"].spec.sources[0].topic
    settle_topic = by_name["auth_settlement"].spec.sources[1].topic
    resources = resources_for(kafka, flink, warehouse)

    # deploy through Dagster, as `dagster asset materialize` would
    streaming = [
        a for a in pipeline_assets(pipelines) if isinstance(a, AssetsDefinition) and not a.partitions_def
    ]
    result = materialize(streaming, resources=resources, instance=DagsterInstance.ephemeral())
    assert result.success
    for pipeline in pipelines:
        [deployed] = [
            e.materialization.metadata
            for e in result.get_asset_materialization_events()
            if e.asset_key == version_key(pipeline.spec)
        ]
        assert deployed["action"].value == "deploy"
        assert deployed["version"].value == 1

    events = sample_events(EVENTS, step_ms=STEP_MS)
    kafka.produce(auth_topic, events.authorizations, key=lambda e: e["account"])  # type: ignore[index]
    kafka.produce(settle_topic, events.settlements, key=lambda e: e["auth_id"])  # type: ignore[index]

    # the event-time watermark: the slowest partition's newest event, minus the delay
    newest: dict[int, int] = {}
    for record in kafka.consume(auth_topic, max_records=EVENTS):
        ts = int(record.value.decode().split('"ts": ')[1].rstrip("}"))  # type: ignore[union-attr]
        newest[record.partition] = max(newest.get(record.partition, 0), ts)
    assert len(newest) == 3
    expected = expected_rows(events.authorizations, events.settlements, min(newest.values()) - WATERMARK_MS)
    assert all(expected.values())

    deadline = time.monotonic() + 240
    pending = dict(by_name)
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            if serving_rows(warehouse, pending[name]) == expected[name]:
                del pending[name]
        time.sleep(1)
    assert not pending, {n: len(serving_rows(warehouse, p)) for n, p in pending.items()}

    # the observation sensor reports each version, and its lag falls to zero
    sensor = stream_observation_sensor(pipelines)
    lag_seen: dict[str, list[int]] = defaultdict(list)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with build_sensor_context(resources=resources) as context:
            observed = sensor(context)
        versions = [e for e in observed.asset_events if "lag_total" in e.metadata]  # type: ignore[union-attr]
        topics = {
            e.asset_key.to_user_string(): e.metadata
            for e in observed.asset_events  # type: ignore[union-attr]
            if "end_offset_total" in e.metadata
        }
        assert topics[topic_key(auth_topic).to_user_string()]["end_offset_total"].value == EVENTS
        assert topics[topic_key(settle_topic).to_user_string()]["records_held"].value == len(
            events.settlements
        )
        lags = {
            e.asset_key.to_user_string(): int(e.metadata["lag_total"].value)  # type: ignore[arg-type]
            for e in versions
        }
        states = {e.metadata["job_state"].value for e in versions}
        assert states == {"RUNNING"}
        for key, lag in lags.items():
            lag_seen[key].append(lag)
        if len(lags) == len(pipelines) and not any(lags.values()):
            break
        time.sleep(2)
    assert sorted(lag_seen) == sorted(version_key(p.spec).to_user_string() for p in pipelines)
    assert all(history[-1] == 0 for history in lag_seen.values()), dict(lag_seen)

    # deploying again changes nothing: the fingerprints already run
    again = materialize(streaming, resources=resources, instance=DagsterInstance.ephemeral())
    actions = {
        e.asset_key.to_user_string(): e.materialization.metadata["action"].value
        for e in again.get_asset_materialization_events()
        if "action" in e.materialization.metadata
    }
    assert set(actions.values()) == {"none"}
    with warehouse.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM kappa_registry.versions")).scalar_one() == len(
            pipelines
        )
        assert conn.execute(text("SELECT count(*) FROM kappa_registry.aliases")).scalar_one() == len(
            pipelines
        )
