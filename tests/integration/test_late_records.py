"""Late records are counted exactly, once, as input records: a job whose SQL has
operators that drop late records (here an hourly group window) dead-letters every valid
record that arrives behind the watermark (reason `late`, with its event time and the
watermark it arrived at), so the gate's `no_late_records`, `status`, the health check,
the observation and the dead-letter topic all give one number; a spec that allows
lateness keeps them in its windows.

Found by a new user: an hourly window dropped 163,332 of 199,013 records as late and
nothing said so (lag 0, "in sync", every check passed). Found again at scale: with
mini-batch (two-phase) aggregation Flink's numLateRecordsDropped counts dropped partial
aggregates, not records: 24 late input records were reported as 5, later 7.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import AssetCheckEvaluation, build_sensor_context
from sqlalchemy import text

from kappa_orch import stream_observation_sensor
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.engine.flink.sources import late_reason
from kappa_orch.lifecycle.dead_letters import distinct, letters_of, version_label
from kappa_orch.lifecycle.gate import ROUTED_LATE
from kappa_orch.lifecycle.services import Services
from kappa_orch.lifecycle.status import pipeline_status
from kappa_orch.registry import store as registry
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack.config import StackConfig
from tests.integration import scale
from tests.integration.platform import Platform, isolated_platform, resources_for, run_reprocess

pytestmark = pytest.mark.integration

HOURS = 4
# events per second in each partition (skewed): 14,400 + 7,200 + 3,600 per hour
RATES = {0: 4, 1: 2, 2: 1}
# late records per partition, produced after the watermark passed their hour
LATE = {0: 40, 1: 25, 2: 9}
IN_TIME = 30  # per partition: out of order, but within the watermark delay (not late)


@pytest.fixture
def platform(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> Iterator[Platform]:
    with isolated_platform(stack, kafka, flink, tmp_path, only=["merchant_risk"]) as isolated:
        yield isolated


def _auth(key: str, ts: int, partition: int) -> dict[str, Any]:
    return {"auth_id": key, "merchant": f"m-{partition}", "amount_cents": 100, "status": "approved", "ts": ts}


run = run_reprocess


def await_lag_zero(platform: Platform, kafka: KafkaResource, flink: FlinkResource) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        [status] = pipeline_status(
            list(platform.pipelines().values()), Services(kafka, flink, platform.warehouse)
        )
        if all(v.lag == 0 for v in status.versions if v.lag is not None):
            time.sleep(3)  # the counters' sink flushes every second
            return
        time.sleep(1)
    raise AssertionError("the job did not catch up")


def window_counts(platform: Platform) -> dict[tuple[str, Any], int]:
    with platform.warehouse.connect() as conn:
        rows = conn.execute(
            text("SELECT merchant, window_start, authorizations FROM features.merchant_risk_hourly")
        )
        return {(r[0], r[1]): r[2] for r in rows}


def _history(kafka: KafkaResource, topic: str) -> list[dict[str, Any]]:
    """Every partition in event-time order over four hours, with broken events mixed in."""
    valid = []
    for partition, rate in RATES.items():
        events = [
            _auth(f"h-{partition}-{i}", scale.START_MS + i * 1000 // rate, partition)
            for i in range(HOURS * 3600 * rate)
        ]
        payloads: list[Any] = []
        for i, event in enumerate(events):
            payloads.append(event)
            if i % 997 == 0:
                payloads.append(b"{not json")  # broken: a reason of its own, never late
        kafka.produce(topic, payloads, partition=partition)
        valid += events
    return valid


def _late_and_in_time(kafka: KafkaResource, topic: str) -> list[dict[str, Any]]:
    """Records of the first three hours (late), records 3 s behind their partition's newest
    (not late: the watermark trails by 5 s), and old broken ones (not counted as late)."""
    end = scale.START_MS + HOURS * scale.HOUR_MS
    sent = []
    for partition, count in LATE.items():
        late = [_auth(f"late-{partition}-{i}", scale.START_MS + i * 97_000, partition) for i in range(count)]
        in_time = [_auth(f"near-{partition}-{i}", end - 3_000, partition) for i in range(IN_TIME)]
        old_and_broken = [{**_auth(f"bad-{partition}", scale.START_MS, partition), "amount_cents": "100"}]
        payloads = [x for pair in zip(late, in_time, strict=False) for x in pair]
        payloads += late[len(in_time) :] + in_time[len(late) :] + old_and_broken
        kafka.produce(topic, payloads, partition=partition)
        sent += late + in_time
    return sent


def closed_windows(events: list[dict[str, Any]]) -> dict[tuple[str, Any], int]:
    """The oracle: authorizations per merchant and hour, for the hours the watermark closed."""
    counts = Counter(
        (e["merchant"], e["ts"] // scale.HOUR_MS * scale.HOUR_MS)
        for e in events
        if e["ts"] < scale.START_MS + (HOURS - 1) * scale.HOUR_MS
    )
    return {
        (merchant, datetime.fromtimestamp(hour / 1000, UTC).replace(tzinfo=None)): n
        for (merchant, hour), n in counts.items()
    }


def test_late_records_are_counted_exactly_once_shown_and_gated(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource
) -> None:
    topic = platform.topic("payments.authorizations")
    history = _history(kafka, topic)
    pipeline = platform.pipelines()["merchant_risk"]
    assert run(platform, pipeline, kafka, flink).success
    assert window_counts(platform) == closed_windows(history)  # the last hour is still open

    sent = _late_and_in_time(kafka, topic)
    late_total = sum(LATE.values())
    await_lag_zero(platform, kafka, flink)

    # status: one number, all of it dead-lettered (no Flink operator dropped anything itself)
    [status] = pipeline_status([pipeline], Services(kafka, flink, platform.warehouse))
    [live] = status.versions
    assert live.late_records == {ROUTED_LATE: late_total}
    assert status.warnings == [
        f"live v1 had {late_total} records arrive late (allowed 0): its windows miss them (see "
        "dead-letters); raise event_time.watermark_delay or set allowed_lateness, then reprocess"
    ]
    # the job's own counters, per partition
    with platform.warehouse.connect() as conn:
        counts = registry.input_counts_of(conn, "merchant_risk", 1)
    assert {c.kafka_partition: c.late for c in counts} == LATE
    # the dead-letter topic: each late record once, with its event time and the watermark
    reason = late_reason(None)
    written = letters_of(kafka, pipeline.spec.dead_letter_topic, pipeline="merchant_risk", version=1)
    letters = [x for x in distinct(written) if x.reason == reason]
    assert Counter(x.source_partition for x in letters) == LATE
    for letter in letters:
        assert letter.event_time is not None and letter.watermark is not None
        assert letter.event_time <= letter.watermark, letter
    late_keys = {e["auth_id"] for e in sent if e["auth_id"].startswith("late-")}
    assert {yaml.safe_load(x.payload or "{}")["auth_id"] for x in letters} == late_keys

    # the observation sensor: the version's series, the dead-letter asset and the health check
    resources = resources_for(kafka, flink, platform.warehouse)
    with build_sensor_context(resources=resources) as context:
        observed = stream_observation_sensor([pipeline])(context)
    events = observed.asset_events  # type: ignore[union-attr]
    [version_event] = [e for e in events if "lag_total" in getattr(e, "metadata", {})]
    assert version_event.metadata["late_records_total"].value == late_total
    assert version_event.metadata[f"late_records/{ROUTED_LATE}"].value == late_total
    [letter_event] = [e for e in events if "letters_written" in getattr(e, "metadata", {})]
    label = version_label("merchant_risk", 1)
    assert letter_event.metadata[f"broken_records/{label}/{reason}"].value == late_total
    verdicts = {e.check_name: e for e in events if isinstance(e, AssetCheckEvaluation)}
    health = verdicts["late_records_within_bounds"]
    assert not health.passed
    assert f"v1 (live) had {late_total} records arrive late" in (health.description or "")

    # the gate names them: re-checking the live version fails no_late_records
    again = run(platform, pipeline, kafka, flink)
    assert not again.success
    [late_check] = [e for e in again.get_asset_check_evaluations() if e.check_name == "no_late_records"]
    assert not late_check.passed
    description = late_check.description or ""
    assert f"{late_total} records arrived late ({late_total} dead-lettered as late)" in description
    assert "gate.max_late_records" in description

    # a spec that allows lateness: a replay keeps the late records in their windows
    spec_path = platform.specs / "merchant_risk.yaml"
    raw = yaml.safe_load(spec_path.read_text())
    raw["allowed_lateness"] = "1d"
    spec_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    lenient = platform.pipelines()["merchant_risk"]
    replay = run(platform, lenient, kafka, flink)
    assert replay.success
    [kept] = [e for e in replay.get_asset_check_evaluations() if e.check_name == "no_late_records"]
    assert kept.passed and (kept.description or "").startswith("0 records arrived late")
    assert window_counts(platform) == closed_windows(history + sent)
