"""A log that was replaced is noticed, on the real stack: daily_spend is live over 60,000
authorizations in three partitions; then its source topic is deleted and created again
under the running job with 20,000 other events (offsets start at 0 again).

Found: the rows of the deleted topic stayed served beside the new ones, `status` said
"in sync" and `plan` "none". Now the version records its sources' Kafka topic ids when its
job is deployed; a changed id marks it degraded with the cause and the two ways out, in
`status`, the `flink_job_running` health check and `plan`. A reprocess replays the new log
into a new version (the gate says how it differs from the old table; a person accepts
that on purpose), and `accept-log` keeps a table as it is, recording who and why."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import AssetCheckEvaluation

from assets.sample_events import sample_events
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.lifecycle.services import Services
from kappa_orch.lifecycle.status import pipeline_status
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack.config import StackConfig
from tests.integration.daily_spend import cli, expected, versions, wait_serving
from tests.integration.platform import (
    Platform,
    isolated_platform,
    observe_once,
    produce_authorizations,
    run_reprocess,
)

pytestmark = pytest.mark.integration

EVENTS = 60_000
NEW_EVENTS = 20_000


@pytest.fixture
def platform(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> Iterator[Platform]:
    with isolated_platform(stack, kafka, flink, tmp_path, only=["daily_spend"]) as platform:
        # Kafka timestamps are the events' (2026-01): older than the 7 days the spec needs
        events = sample_events(EVENTS, step_ms=30_000).authorizations
        produce_authorizations(platform, kafka, events, event_timestamps=True)
        yield platform


def _replace_the_log(platform: Platform, kafka: KafkaResource, seed: int) -> list[dict[str, object]]:
    """Delete the source topic and create it again with other events."""
    topic = platform.topic("payments.authorizations")
    partitions = len(kafka.end_offsets(topic))
    kafka.delete_topic(topic)
    kafka.create_topic(topic, partitions=partitions)
    events = sample_events(NEW_EVENTS, seed=seed, step_ms=30_000, id_prefix=f"new{seed}").authorizations
    produce_authorizations(platform, kafka, events, event_timestamps=True)
    return events


def _status(platform: Platform, kafka: KafkaResource, flink: FlinkResource):  # type: ignore[no-untyped-def]
    [status] = pipeline_status(
        [platform.pipelines()["daily_spend"]], Services(kafka, flink, platform.warehouse)
    )
    return status


def _plan(platform: Platform, stack: StackConfig) -> dict[str, object]:
    shown = cli(platform, stack, "plan", "--json")
    out, _ = shown.communicate(timeout=120)
    [plan] = [p for p in json.loads(out[out.index("[") :]) if p["pipeline"] == "daily_spend"]
    return plan  # type: ignore[no-any-return]


def test_a_replaced_log_is_noticed_then_replayed_or_accepted(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource, stack: StackConfig
) -> None:
    assert run_reprocess(platform, platform.pipelines()["daily_spend"], kafka, flink).success
    old_rows = expected(platform.events, {"approved"})  # type: ignore[attr-defined]
    wait_serving(platform, old_rows)
    topic = platform.topic("payments.authorizations")
    assert versions(platform)[1].source_topic_ids == kafka.topic_ids([topic])
    assert _status(platform, kafka, flink).in_sync

    new_events = _replace_the_log(platform, kafka, seed=23)
    new_id = kafka.topic_ids([topic])[topic]
    old_id = (versions(platform)[1].source_topic_ids or {})[topic]
    assert new_id != old_id
    time.sleep(10)  # the job reads the new log beside the old rows: the silent failure

    # status: the live version is degraded, with the cause and both ways out
    status = _status(platform, kafka, flink)
    assert not status.in_sync and status.degraded
    [live] = status.versions
    why = live.degraded or ""
    assert f"source topic {topic} was deleted and created again (topic id {old_id} -> {new_id})" in why
    assert "kappa-orch reprocess daily_spend" in why
    assert "kappa-orch accept-log daily_spend --version 1" in why
    # the health check says it at once
    events, _ = observe_once(platform, kafka, flink, None)
    checks = {e.check_name: e for e in events if isinstance(e, AssetCheckEvaluation)}
    assert not checks["flink_job_running"].passed
    assert "was deleted and created again" in (checks["flink_job_running"].description or "")
    # the plan: a person decides (automation does not replay it)
    plan = _plan(platform, stack)
    assert plan["action"] == "blocked"
    assert "was deleted and created again" in str(plan["detail"])

    # replayed: a new version reads the new log; the gate shows how it differs from v1
    reason = "the topic was recreated with the corrected log"
    accept = ("--accept", "parity_with_live", "--reason", reason)
    replay = cli(platform, stack, "reprocess", "daily_spend", "--wait", *accept)
    out, _ = replay.communicate(timeout=600)
    assert replay.returncode == 0, out
    wait_serving(platform, expected(new_events, {"approved"}))  # type: ignore[arg-type]
    rows = versions(platform)
    assert rows[2].state == "live" and rows[2].source_topic_ids == {topic: new_id}
    assert rows[1].fingerprint == f"{rows[2].fingerprint}~v1"  # set aside, no longer "the spec's"
    status = _status(platform, kafka, flink)
    assert status.in_sync and not status.degraded

    # replaced again, and kept on purpose: the new id becomes v2's, with who and why
    _replace_the_log(platform, kafka, seed=29)
    assert not _status(platform, kafka, flink).in_sync
    kept = cli(platform, stack, "accept-log", "daily_spend", "--version", "2", "--reason", "replayed by hand")
    out, _ = kept.communicate(timeout=120)
    assert kept.returncode == 0, out
    assert "accepted: replayed by hand" in out
    [accepted] = versions(platform)[2].logs_accepted or []
    assert accepted["reason"] == "replayed by hand" and accepted["replaced"][0]["topic"] == topic
    assert _status(platform, kafka, flink).in_sync
    # nothing left to accept: a clear refusal
    again = cli(platform, stack, "accept-log", "daily_spend", "--version", "2", "--reason", "again")
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 1 and "no source topic of daily_spend v2 was replaced" in out
