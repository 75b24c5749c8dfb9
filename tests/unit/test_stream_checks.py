"""The health checks on the versions asset, from recorded answers: a lost job, lag, stale
checkpoints, late records, and what they say while a service does not answer."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from dagster import AssetCheckSeverity

from kappa_orch.dagster.answers import StreamAnswers, gather_answers
from kappa_orch.dagster.observe import _cursor, registry_outage, track_outages, verdict_changes
from kappa_orch.dagster.stream_checks import (
    CHECKPOINT_CHECK,
    LAG_CHECK,
    LATE_CHECK,
    verdicts_of,
)
from kappa_orch.dagster.translator import DEFAULT_TRANSLATOR
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.engine.protocol import Checkpoint
from kappa_orch.registry import store as registry
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.spec.load import load_pipelines

ASSETS = Path(__file__).resolve().parents[2] / "assets"
PIPELINE = next(p for p in load_pipelines(ASSETS) if p.name == "daily_spend")
TOPIC = PIPELINE.spec.sources[0].topic
NOW_MS = 1_800_000_000_000
DEPLOYED = datetime.fromtimestamp((NOW_MS - 3_600_000) / 1000, UTC)  # an hour before NOW


def row(version: int, state: str, job: str | None = None) -> registry.VersionRow:
    return registry.VersionRow(
        "daily_spend", version, "f", f"daily_spend__v{version}", state, job or f"j{version}",
        f"kappa.daily_spend.v{version}", None, None, created_at=DEPLOYED,
    )  # fmt: skip


def healthy(**changes: object) -> StreamAnswers:
    """v1 live and v2 catching up, both running, checkpointed 10 s ago, no lag, no late records."""
    answers = {
        "observed_at_ms": NOW_MS,
        "job_states": {"j1": "RUNNING", "j2": "RUNNING"},
        "checkpoints": {
            "j1": Checkpoint(5, NOW_MS - 10_000, None),
            "j2": Checkpoint(3, NOW_MS - 10_000, None),
        },
        "late_records": {"j1": {"window": 0}, "j2": {"window": 0}},
        "lags": {("kappa.daily_spend.v1", TOPIC): {0: 3, 1: 4}, ("kappa.daily_spend.v2", TOPIC): {0: 90_000}},
    }
    answers.update(changes)
    return StreamAnswers(**answers)  # type: ignore[arg-type]


ROWS = [row(1, registry.LIVE), row(2, registry.CATCHING_UP)]
LIVE = {"daily_spend": 1}


def verdicts(
    answers: StreamAnswers, rows: list[registry.VersionRow] = ROWS, since: dict | None = None
) -> dict:
    return {v.check: v for v in verdicts_of(PIPELINE, rows, LIVE, answers, since or {})}


def test_a_healthy_pipeline_passes_every_check() -> None:
    result = verdicts(healthy())
    assert all(v.passed and v.observed for v in result.values()), result
    # a candidate catching up is expected to lag: only live and ready versions are bounded
    assert result[LAG_CHECK].summary == "lag v1 (live) 7 (bound 10,000)"
    assert result[CHECKPOINT_CHECK].summary == "2 job(s) checkpointed within 300s"


def test_a_lost_live_job_fails_red_with_its_root_cause() -> None:
    answers = healthy(
        job_states={"j1": "FAILED", "j2": "RUNNING"},
        job_exceptions={
            "j1": "org.apache.flink.SomeException: boom\nCaused by: java.io.IOException: disk full"
        },
    )
    job = verdicts(answers)["flink_job_running"]
    assert not job.passed and job.severity == AssetCheckSeverity.ERROR
    assert "v1 is live but its Flink job j1 is FAILED" in job.summary
    assert "kappa-orch repair daily_spend" in job.summary
    assert "disk full" in str(job.metadata["root_cause/v1"].value)  # type: ignore[attr-defined]


def test_a_live_job_that_stays_restarting_or_waiting_for_slots_fails_red_with_the_fix() -> None:
    # issue 15, bad input: a TaskManager that never comes back left the job alive
    # (RESTARTING, then RUNNING with its tasks waiting for slots) and the check green, while
    # the alias served ever staler rows
    slots = (
        "org.apache.flink.runtime.JobException: Recovery is suppressed\nCaused by: "
        "org.apache.flink.runtime.jobmanager.scheduler.NoResourceAvailableException: "
        "Could not acquire the minimum required resources."
    )
    waiting = healthy(
        job_states={"j1": "RUNNING", "j2": "RUNNING"},
        stalls={"j1": (NOW_MS - 180_000, 3)},
        job_exceptions={"j1": slots},
    )
    job = verdicts(waiting)["flink_job_running"]
    assert not job.passed and job.severity == AssetCheckSeverity.ERROR
    assert (
        "v1 is live but its Flink job j1 has processed nothing for 180s (3 task(s) waiting to run"
        in job.summary
    )
    assert (
        "NoResourceAvailableException" in job.summary
        and "start it again (`kappa-orch stack up`" in job.summary
    )
    assert job.summary.endswith("(bound 120s: health.max_stalled)")
    # a restart that is over within the bound is no failure; a candidate is not judged
    brief = healthy(job_states={"j1": "RESTARTING", "j2": "RUNNING"}, stalls={"j1": (NOW_MS - 30_000, 0)})
    assert verdicts(brief)["flink_job_running"].passed
    candidate = healthy(stalls={"j2": (NOW_MS - 900_000, 2)})
    assert verdicts(candidate)["flink_job_running"].passed
    kafka = healthy(
        job_states={"j1": "RESTARTING", "j2": "RUNNING"},
        stalls={"j1": (NOW_MS - 600_000, 0)},
        job_exceptions={"j1": "Caused by: org.apache.kafka.common.errors.NotEnoughReplicasException: x"},
    )
    summary = verdicts(kafka)["flink_job_running"].summary
    assert "for 600s (restarting; last failure: org.apache.kafka" in summary and "stack status" in summary


def test_a_live_version_behind_its_bound_fails_lag_within_bounds() -> None:
    lags = {("kappa.daily_spend.v1", TOPIC): {0: 20_000, 1: 1}}
    lag = verdicts(healthy(lags=lags))[LAG_CHECK]
    assert not lag.passed and lag.severity == AssetCheckSeverity.WARN
    assert lag.summary == "v1 (live) lags 20,001 records (bound 10,000: health.max_lag)"


def test_a_stalled_checkpoint_fails_and_a_new_job_gets_its_bound_for_the_first() -> None:
    stale = healthy(checkpoints={"j1": Checkpoint(5, NOW_MS - 900_000, None), "j2": None})
    result = verdicts(stale)[CHECKPOINT_CHECK]
    assert not result.passed
    assert "v1's last checkpoint is 900s old" in result.summary
    assert "v2 completed no checkpoint in the 3,600s since its deploy" in result.summary
    fresh = [row(1, registry.LIVE), row(2, registry.CATCHING_UP)]
    fresh[1] = registry.VersionRow(
        **{**fresh[1].__dict__, "created_at": datetime.fromtimestamp(NOW_MS / 1000 - 60, UTC)}
    )
    assert verdicts(healthy(checkpoints={"j1": Checkpoint(5, NOW_MS, None), "j2": None}), fresh)[
        CHECKPOINT_CHECK
    ].passed


def test_a_stale_checkpoint_says_why_the_storage_refuses_it() -> None:
    # issue 15, bad input: an object store that refuses writes (after the stack started)
    refused = "Caused by: java.nio.file.AccessDeniedException: s3a://b/cp/j1/chk-6: PutObject: 403 Forbidden"
    stale = healthy(
        checkpoints={"j1": Checkpoint(5, NOW_MS - 900_000, None), "j2": None},
        checkpoint_failures={"j1": refused.removeprefix("Caused by: "), "j2": "timeout"},
    )
    summary = verdicts(stale)[CHECKPOINT_CHECK].summary
    assert (
        "v1's last checkpoint is 900s old (the last one failed: java.nio.file.AccessDeniedException"
        in summary
    )
    assert "since its deploy (the last one failed: timeout)" in summary


def test_checkpoints_that_fail_now_fail_the_check_before_the_age_bound() -> None:
    # found: a job whose dead-letter writes blocked failed every checkpoint, yet the check
    # waited for the 5-minute age bound
    failing = healthy(
        checkpoints={"j1": Checkpoint(5, NOW_MS - 20_000, None), "j2": Checkpoint(3, NOW_MS, None)},
        checkpoint_failures={"j1": "org.apache.kafka.common.errors.TimeoutException: Topic x not present"},
    )
    result = verdicts(failing)[CHECKPOINT_CHECK]
    assert not result.passed
    assert "v1's checkpoints are failing: org.apache.kafka.common.errors.TimeoutException" in result.summary
    assert "(last completed 20s ago)" in result.summary


def test_a_missing_dead_letter_topic_fails_flink_job_running() -> None:
    answers = healthy()
    answers.missing_topics.add(PIPELINE.spec.dead_letter_topic)
    result = verdicts(answers)["flink_job_running"]
    assert not result.passed
    assert f"the dead-letter topic {PIPELINE.spec.dead_letter_topic} is missing (deleted?)" in result.summary
    assert "kappa-orch repair daily_spend" in result.summary


def test_records_dropped_as_late_by_the_live_job_fail_late_records_within_bounds() -> None:
    late = verdicts(healthy(late_records={"j1": {"window": 12, "join": 3}}))[LATE_CHECK]
    assert not late.passed
    assert late.summary.startswith("v1 (live) had 15 records arrive late (bound 0: gate.max_late_records")


def test_a_service_that_does_not_answer_fails_the_checks_that_need_it_with_since_when() -> None:
    since = {"flink": NOW_MS - 120_000}
    answers = healthy(outages={"flink": "the Flink REST API at http://127.0.0.1:8081 did not answer"})
    result = verdicts(answers, since=since)
    for check in ("flink_job_running", CHECKPOINT_CHECK, LATE_CHECK):
        assert not result[check].passed and result[check].observed
        assert "not observed: Flink not reachable since 2027-01-15 07:58:00 UTC" in result[check].summary
    assert result[LAG_CHECK].passed  # Kafka answered
    down = verdicts(healthy(outages={"kafka": "Kafka at 127.0.0.1:9092 did not answer"}))[LAG_CHECK]
    assert not down.passed and "Kafka not reachable since" in down.summary


def test_nothing_is_reported_healthy_that_was_not_asked() -> None:
    # the tick's time budget ran out before v1 was asked
    result = verdicts(StreamAnswers(observed_at_ms=NOW_MS))
    assert not any(v.observed for v in result.values())
    state = _cursor(None)
    assert (
        verdict_changes(
            [PIPELINE], ROWS, LIVE, StreamAnswers(observed_at_ms=NOW_MS), state, DEFAULT_TRANSLATOR
        )
        == []
    )


def test_the_sensor_reports_a_verdict_when_it_changes_and_outages_keep_their_start() -> None:
    state = _cursor(None)
    first = verdict_changes([PIPELINE], ROWS, LIVE, healthy(), state, DEFAULT_TRANSLATOR)
    assert sorted(e.check_name for e in first) == sorted(
        ["flink_job_running", LAG_CHECK, CHECKPOINT_CHECK, LATE_CHECK]
    )
    assert verdict_changes([PIPELINE], ROWS, LIVE, healthy(), state, DEFAULT_TRANSLATOR) == []
    lagging = healthy(
        lags={("kappa.daily_spend.v1", TOPIC): {0: 50_000}, ("kappa.daily_spend.v2", TOPIC): {0: 1}}
    )
    [changed] = verdict_changes([PIPELINE], ROWS, LIVE, lagging, state, DEFAULT_TRANSLATOR)
    assert (changed.check_name, changed.passed) == (LAG_CHECK, False)
    since = track_outages({"flink": "down"}, {}, 1000)
    assert track_outages({"flink": "still down"}, since, 5000) == {"flink": 1000}
    assert track_outages({}, since, 9000) == {}


def test_with_the_registry_down_every_check_says_so_once() -> None:
    state = _cursor(None)
    events = registry_outage(
        [PIPELINE], "PostgreSQL at 127.0.0.1:5432 did not answer", state, DEFAULT_TRANSLATOR
    )
    assert len(events) == 4 and not any(e.passed for e in events)
    assert all("the warehouse (registry) not reachable since" in (e.description or "") for e in events)
    assert (
        registry_outage([PIPELINE], "PostgreSQL at 127.0.0.1:5432 did not answer", state, DEFAULT_TRANSLATOR)
        == []
    )


def test_asking_a_dead_flink_records_an_outage_instead_of_raising() -> None:
    flink = FlinkResource(rest_url="http://127.0.0.1:9", sql_gateway_url="http://127.0.0.1:9")
    kafka = KafkaResource(bootstrap_servers="127.0.0.1:9", request_timeout_s=2)
    answers = gather_answers([(PIPELINE, ROWS[0])], kafka=kafka, flink=flink, deadline=time.monotonic() + 60)
    assert "did not answer" in answers.outages["flink"]
    assert "did not answer" in answers.outages["kafka"]
    assert answers.job_states == {} and answers.lags == {}
    assert not verdicts(answers)["flink_job_running"].passed


def test_a_running_job_whose_read_position_stands_still_while_records_wait_is_stuck() -> None:
    # found: with its dead-letter producer blocked, a live job stayed RUNNING while valid
    # events stopped reaching the alias (6 of 180 in 3 minutes) and every check was green
    from dataclasses import replace

    from kappa_orch.dagster.answers import STUCK_AFTER_S, TopicAnswer, read_progress

    watched = [(PIPELINE, row(1, registry.LIVE))]
    ends = {TOPIC: TopicAnswer(watermarks={0: (0, 500), 1: (0, 400)}, retention_ms=None)}
    first = healthy(lags={("kappa.daily_spend.v1", TOPIC): {0: 0, 1: 0}}, topics=ends)
    positions = read_progress(watched, first, {})
    assert positions["j1"] == {"read": {f"{TOPIC}/0": 500, f"{TOPIC}/1": 400}, "since_ms": NOW_MS}
    # input arrives (120 records), the committed position does not move: one tick later, stuck
    later_ends = {TOPIC: TopicAnswer(watermarks={0: (0, 560), 1: (0, 460)}, retention_ms=None)}
    later_ms = NOW_MS + int(STUCK_AFTER_S * 1000) + 10_000
    second = healthy(
        observed_at_ms=later_ms, lags={("kappa.daily_spend.v1", TOPIC): {0: 60, 1: 60}}, topics=later_ends
    )
    again = read_progress(watched, second, positions)
    assert again["j1"]["since_ms"] == NOW_MS  # still since the first tick
    assert second.stuck == {"j1": (STUCK_AFTER_S + 10, 120)}
    job = verdicts(second, rows=[row(1, registry.LIVE)])["flink_job_running"]
    assert not job.passed
    assert job.summary.startswith("v1 read nothing for 30s while 120 records wait")
    # a job that moves on is not stuck, and neither is one with nothing to read
    moving = healthy(
        observed_at_ms=later_ms, lags={("kappa.daily_spend.v1", TOPIC): {0: 10, 1: 0}}, topics=later_ends
    )
    read_progress(watched, moving, positions)
    assert moving.stuck == {}
    idle = replace(first, observed_at_ms=later_ms)
    read_progress(watched, idle, positions)
    assert idle.stuck == {}
