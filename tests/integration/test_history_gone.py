"""History that is gone cannot pass the gate, on the real stack: daily_spend is live over
60,000 authorizations in three partitions; then the oldest 1%, 3% and 5% of them are
deleted from the log (as a shrunken retention or `delete-records` would), older than
the history `start.retention_needed` asks for, so the deploy's retention guard lets the
replay start. `plan` shows the gap before anything runs, the candidate's gate fails
`complete_history` with the numbers and the fix, the alias stays, and parity shows the
values of the keys both versions hold. Accepting the gap on purpose (who and why) lets it
through."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from assets.sample_events import sample_events
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack.config import StackConfig
from tests.integration.daily_spend import cli, expected, swaps, versions, wait_serving
from tests.integration.platform import (
    Platform,
    count_declined_too,
    isolated_platform,
    produce_authorizations,
    run_reprocess,
)

pytestmark = pytest.mark.integration

EVENTS = 60_000


@pytest.fixture
def platform(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> Iterator[Platform]:
    with isolated_platform(stack, kafka, flink, tmp_path, only=["daily_spend"]) as platform:
        # Kafka timestamps are the events' (2026-01): older than the 7 days the spec needs
        events = sample_events(EVENTS, step_ms=30_000).authorizations
        produce_authorizations(platform, kafka, events, event_timestamps=True)
        yield platform


def test_a_replay_that_misses_deleted_history_cannot_pass_the_gate(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource, stack: StackConfig
) -> None:
    assert run_reprocess(platform, platform.pipelines()["daily_spend"], kafka, flink).success
    wait_serving(platform, expected(platform.events, {"approved"}))  # type: ignore[attr-defined]
    topic = platform.topic("payments.authorizations")
    ends = kafka.end_offsets(topic)
    assert len(ends) == 3
    cut = {p: end * share // 100 for (p, end), share in zip(sorted(ends.items()), (1, 3, 5), strict=True)}
    kafka.delete_records_before(topic, cut)

    changed = count_declined_too(platform)
    # the plan shows the gap before anything runs
    shown = cli(platform, stack, "plan", "--json")
    out, _ = shown.communicate(timeout=120)
    [plan] = [p for p in json.loads(out[out.index("[") :]) if p["pipeline"] == "daily_spend"]
    assert plan["action"] == "reprocess"
    gaps = {g["partition"]: g["missing"] for g in plan["replay"]["history_gaps"]}
    assert gaps == cut
    text_plan = cli(platform, stack, "plan")
    out, _ = text_plan.communicate(timeout=120)
    assert f"history: {cut[0]:,} record(s) live v1 read are gone from {topic}[0]" in out

    # found: the swap served 188 of 200 aggregates wrong (spend -3.0%), rc 0
    result = run_reprocess(platform, changed, kafka, flink)
    assert not result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    history = checks["complete_history"]
    assert not history.passed
    assert history.metadata["missing_records"].value == sum(cut.values())
    summary = str(history.metadata["summary"].value)
    assert summary.startswith(f"v2 did not read {sum(cut.values()):,} record(s) that live v1 read (")
    assert f"{topic}[0] offsets 0..{cut[0] - 1}" in summary
    assert "--accept complete_history" in summary
    # the other checks pass: nothing else would have noticed
    assert checks["input_balance"].passed and checks["unique_primary_key"].passed
    # parity compares the values of the keys both versions hold (shown; bounded when declared)
    parity = checks["parity_with_live"].metadata
    sums = parity["value_sums"].value
    assert set(sums) == {"authorizations", "spend_cents"}  # type: ignore[arg-type]
    assert parity["value_change"].value["authorizations"] > 0  # type: ignore[index]
    rows = versions(platform)
    assert rows[1].state == "live" and rows[2].state == "failed"
    assert len(swaps(platform)) == 1

    # accepted on purpose, with who and why: it goes through, and the swap says so
    reason = "the deleted days were test traffic"
    accepted = cli(
        platform,
        stack,
        "reprocess",
        "daily_spend",
        "--wait",
        "--accept",
        "complete_history",
        "--reason",
        reason,
    )
    out, _ = accepted.communicate(timeout=600)
    assert accepted.returncode == 0, out
    assert swaps(platform)[-1]["accepted"]["complete_history"].endswith(f": {reason}")
