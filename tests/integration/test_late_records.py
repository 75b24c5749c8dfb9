"""Late records are visible and gated: records a window drops as late are counted per
operator, shown by `status` (with a warning on the live version) and by the
observation sensor, and fail the gate's `no_late_records`; a spec that allows
lateness keeps them in its windows.

Found by a new user: an hourly window dropped 163,332 of 199,013 records as late and
nothing said so (lag 0, "in sync", every check passed).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import build_sensor_context
from sqlalchemy import text

from kappa_orch import stream_observation_sensor
from kappa_orch.resources.flink import FlinkResource
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack.config import StackConfig
from kappa_orch.status import pipeline_status
from tests.integration import scale
from tests.integration.platform import Platform, isolated_platform, run_reprocess

pytestmark = pytest.mark.integration

HOURS = 4
LATE = 25


@pytest.fixture
def platform(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> Iterator[Platform]:
    with isolated_platform(stack, kafka, flink, tmp_path, only=["merchant_risk"]) as isolated:
        yield isolated


def _auth(i: int, ts: int, partition: int) -> dict[str, Any]:
    return {
        "auth_id": f"l-{i}",
        "merchant": f"m-{partition}",
        "amount_cents": 100,
        "status": "approved",
        "ts": ts,
    }


run = run_reprocess


def await_lag_zero(platform: Platform, kafka: KafkaResource, flink: FlinkResource) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        [status] = pipeline_status(
            list(platform.pipelines().values()), kafka=kafka, flink=flink, warehouse=platform.warehouse
        )
        if all(v.lag == 0 for v in status.versions if v.lag is not None):
            return
        time.sleep(1)
    raise AssertionError("the job did not catch up")


def window_counts(platform: Platform) -> dict[tuple[str, Any], int]:
    with platform.warehouse.connect() as conn:
        rows = conn.execute(
            text("SELECT merchant, window_start, authorizations FROM features.merchant_risk_hourly")
        )
        return {(r[0], r[1]): r[2] for r in rows}


def test_late_records_are_counted_shown_and_gated(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource
) -> None:
    topic = platform.topic("payments.authorizations")
    # every partition in event-time order: one event a minute for four hours
    for partition in range(3):
        events = [
            _auth(partition * 1000 + m, scale.START_MS + m * 60_000, partition) for m in range(HOURS * 60)
        ]
        kafka.produce(topic, events, partition=partition, timestamp_ms=lambda e: e["ts"])
    pipeline = platform.pipelines()["merchant_risk"]
    assert run(platform, pipeline, kafka, flink).success
    assert len(window_counts(platform)) == 3 * (HOURS - 1)  # the last hour is still open

    # records of the first hour arrive after the watermark passed it: dropped as late
    late = [_auth(9000 + i, scale.START_MS + i * 1000, 0) for i in range(LATE)]
    kafka.produce(topic, late, partition=0, timestamp_ms=lambda e: e["ts"] + HOURS * 3_600_000)
    await_lag_zero(platform, kafka, flink)
    [status] = pipeline_status([pipeline], kafka=kafka, flink=flink, warehouse=platform.warehouse)
    [live] = status.versions
    assert live.late_total == LATE
    [operator] = live.late_records or {}
    assert operator.startswith("GroupWindowAggregate[")
    assert status.warnings == [
        f"live v1 dropped {LATE} records as late (allowed 0): its windows miss them; raise "
        "event_time.watermark_delay or set allowed_lateness, then reprocess"
    ]
    # the observation sensor reports them
    resources = {"kafka": kafka, "flink": flink, "warehouse": platform.warehouse}
    with build_sensor_context(resources=resources) as context:
        observed = stream_observation_sensor([pipeline])(context)
    [version_event] = [e for e in observed.asset_events if "lag_total" in e.metadata]  # type: ignore[union-attr]
    assert version_event.metadata["late_records_total"].value == LATE
    assert version_event.metadata[f"late_records/{operator}"].value == LATE

    # the gate names them: re-checking the live version fails no_late_records
    again = run(platform, pipeline, kafka, flink)
    assert not again.success
    [late_check] = [e for e in again.get_asset_check_evaluations() if e.check_name == "no_late_records"]
    assert not late_check.passed
    description = late_check.description or ""
    assert f"{LATE} records dropped as late ({LATE} in {operator})" in description
    assert "gate.max_late_records" in description

    # a spec that allows lateness: a replay keeps the late records in their windows
    spec_path = platform.specs / "merchant_risk.yaml"
    raw = yaml.safe_load(spec_path.read_text())
    raw["allowed_lateness"] = "1d"
    spec_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    lenient = platform.pipelines()["merchant_risk"]
    replay = run(platform, lenient, kafka, flink)
    assert replay.success
    counts = window_counts(platform)
    first_hour = scale.START_MS // 3_600_000 * 3_600_000
    start = datetime.fromtimestamp(first_hour / 1000, UTC).replace(tzinfo=None)
    assert counts[("m-0", start)] == 60 + LATE
    assert counts[("m-1", start)] == 60
