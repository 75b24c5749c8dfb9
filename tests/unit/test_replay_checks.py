"""History that is gone cannot pass the gate, and parity compares values (pure verdicts)."""

from __future__ import annotations

from pathlib import Path

from kappa_orch.plan.replay_checks import (
    complete_history_verdict,
    deleted_since,
    history_gaps,
    value_changes,
)
from kappa_orch.registry import store as registry
from kappa_orch.registry.store import InputCount
from kappa_orch.spec.load import load_pipelines

ASSETS = Path(__file__).resolve().parents[2] / "assets"
SPEC = {p.name: p for p in load_pipelines(ASSETS)}["daily_spend"].spec
TOPIC = SPEC.sources[0].topic


def counts(*firsts: int, last: int = 999) -> list[InputCount]:
    return [InputCount(TOPIC, p, last - f + 1, last - f + 1, 0, f, last) for p, f in enumerate(firsts)]


def test_a_candidate_that_started_past_the_live_versions_first_offset_has_a_gap() -> None:
    # found: with the oldest 3% of the topic deleted, a replay read from offset 200 instead of 0
    live, candidate = counts(0, 0, 0), counts(200, 0, 5)
    assert history_gaps(candidate, live) == [
        {"topic": TOPIC, "partition": 0, "live_from": 0, "candidate_from": 200, "missing": 200},
        {"topic": TOPIC, "partition": 2, "live_from": 0, "candidate_from": 5, "missing": 5},
    ]
    passed, summary, metadata = complete_history_verdict(SPEC, 3, 2, candidate, live)
    assert not passed and metadata["missing_records"] == 205
    assert summary.startswith("v3 did not read 205 record(s) that live v2 read (")
    assert f"{TOPIC}[0] offsets 0..199" in summary
    assert "--accept complete_history" in summary and "bootstrap snapshot" in summary


def test_a_partition_the_candidate_never_read_is_all_gap() -> None:
    assert history_gaps(counts(0), counts(0, 10))[0]["missing"] == 990


def test_the_same_or_an_earlier_start_is_complete() -> None:
    assert complete_history_verdict(SPEC, 3, 2, counts(0, 0), counts(0, 7))[0]
    assert (
        complete_history_verdict(SPEC, 3, None, counts(50), [])[1] == "no other live version to compare with"
    )
    latest = SPEC.model_copy(update={"start": SPEC.start.model_copy(update={"position": "latest"})})
    assert complete_history_verdict(latest, 3, 2, counts(500), counts(0))[0]


def test_plan_sees_what_the_log_no_longer_holds() -> None:
    assert deleted_since(counts(0, 0), {TOPIC: {0: 200, 1: 0}}) == [
        {"topic": TOPIC, "partition": 0, "live_from": 0, "log_from": 200, "missing": 200}
    ]
    assert deleted_since(counts(0), {}) == []


def test_value_changes_are_bounded_only_where_declared() -> None:
    sums = {
        "spend_cents": {"candidate": 97.0, "live": 100.0},
        "authorizations": {"candidate": 5.0, "live": 5.0},
    }
    changes, over = value_changes(sums, None)
    assert changes == {"spend_cents": 0.03, "authorizations": 0.0} and over == []
    _, over = value_changes(sums, 0.01)
    assert over == [
        "spend_cents sums 97 vs 100 live over the shared keys (3.00%; allowed 1.00%: gate.max_value_change)"
    ]
    assert value_changes({"x": {"candidate": 1.0, "live": 0.0}}, 0.5)[1]  # from nothing is a change


def test_a_replaced_log_is_named_with_both_ways_out() -> None:
    from dataclasses import replace

    from kappa_orch.plan.replay_checks import replaced_log_problem, replaced_logs

    base = registry.VersionRow(
        pipeline="daily_spend",
        version=3,
        fingerprint="f",
        physical_table="daily_spend__v3",
        state=registry.LIVE,
        flink_job_id="j",
        group_id="g",
        deployed_offsets=None,
        error=None,
    )
    row = replace(base, source_topic_ids={"auths": "A", "settlements": "S"})
    assert replaced_logs(row, {"auths": "A", "settlements": "S"}) == []
    assert replaced_logs(row, {"auths": "A"}) == []  # settlements not asked
    recreated = replaced_logs(row, {"auths": "B", "settlements": "S"})
    assert recreated == [{"topic": "auths", "was": "A", "now": "B"}]
    deleted = replaced_logs(row, {"auths": None, "settlements": "S"})
    text = replaced_log_problem("daily_spend", row, recreated + deleted[:0])
    assert text.startswith(
        "source topic auths was deleted and created again (topic id A -> B) since v3's job"
    )
    assert "kappa-orch reprocess daily_spend" in text
    assert "kappa-orch accept-log daily_spend --version 3 --reason" in text
    assert replaced_log_problem("daily_spend", row, deleted).startswith(
        "source topic auths was deleted (id A)"
    )
