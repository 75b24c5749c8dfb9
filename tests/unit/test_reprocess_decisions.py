"""Pure decisions of the reprocess: catch-up, the plan (and so the sensors), retirement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from kappa_orch.lifecycle.catch_up import CatchUpTracker
from kappa_orch.plan.decide import RegistryView, due_for_retirement, plan
from kappa_orch.registry import store as registry
from kappa_orch.spec.fingerprint import fingerprint
from kappa_orch.spec.load import load_pipelines

ASSETS = Path(__file__).resolve().parents[2] / "assets"
PIPELINE = next(p for p in load_pipelines(ASSETS) if p.name == "daily_spend")
FP = fingerprint(PIPELINE)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def row(
    version: int, fp: str, state: str, *, error: str | None = None, replaced: datetime | None = None
) -> registry.VersionRow:
    return registry.VersionRow(
        "daily_spend", version, fp, f"daily_spend__v{version}", state, f"j{version}",
        f"kappa.daily_spend.v{version}", None, error, replaced_at=replaced,
    )  # fmt: skip


def test_catch_up_needs_the_whole_stable_window() -> None:
    tracker = CatchUpTracker(max_lag=10, stable_for_s=5)
    assert not tracker.observe(0, 1000)
    assert not tracker.observe(2, 5)  # under the threshold: the window starts
    assert not tracker.observe(4, 12)  # back over it: the window resets
    assert not tracker.observe(6, 3)
    assert not tracker.observe(10, 0)
    assert tracker.observe(11, 0)
    done, rate, left = tracker.progress()
    assert done == 1.0 and rate == 1000 / 11 and left == 0


def test_progress_estimates_time_left() -> None:
    tracker = CatchUpTracker(max_lag=0, stable_for_s=1)
    tracker.observe(0, 10_000)
    tracker.observe(4, 6_000)
    assert tracker.progress() == (0.4, 1000.0, 6.0)


def test_a_growing_lag_is_no_progress_not_a_negative_rate() -> None:
    # found by validating every OpenLineage event the tests emit: with its TaskManager
    # killed, a candidate's lag grew while the job restarted, and its catch-up progress
    # said -737.9 events/s (on the console and in the kappa_catchUp facet, whose schema
    # says at least 0)
    tracker = CatchUpTracker(max_lag=0, stable_for_s=1)
    tracker.observe(0, 10_000)
    tracker.observe(4, 12_000)
    assert tracker.progress() == (0.0, 0.0, None)
    tracker.observe(8, 11_000)  # still behind where it started
    assert tracker.progress() == (0.0, 0.0, None)
    tracker.observe(12, 4_000)
    assert tracker.progress() == (0.6, 500.0, 8.0)


def decide(
    rows: list[registry.VersionRow], live: dict[str, int], claims: dict[str, str] | None = None
) -> tuple[str, str]:
    [p] = plan([PIPELINE], RegistryView(rows, live, claims or {}, NOW))
    return p.action, p.detail


def test_plan_actions() -> None:
    assert decide([], {}) == ("deploy", "no live version yet")
    assert decide([row(1, FP, registry.LIVE)], {"daily_spend": 1})[0] == "none"
    assert decide([row(1, "old", registry.LIVE)], {"daily_spend": 1}) == (
        "reprocess",
        "spec changed: v1 runs old",
    )
    # a candidate that passed its gate but was not swapped yet: the run finishes it
    assert decide([row(1, "old", registry.LIVE), row(2, FP, registry.READY)], {"daily_spend": 1}) == (
        "reprocess",
        "candidate v2 is ready",
    )


def test_plan_blocks_in_flight_and_failed_candidates() -> None:
    live = [row(1, "old", registry.LIVE)]
    assert decide(live, {"daily_spend": 1}, {"daily_spend": "run-9@host:1"}) == (
        "blocked",
        "a reprocess is in flight (run-9@host:1)",
    )
    failed = row(2, FP, registry.FAILED, error="checks failed: expectations: 3 unexpected")
    assert decide([*live, failed], {"daily_spend": 1}) == (
        "blocked",
        "candidate v2 failed, not retried: checks failed: expectations: 3 unexpected",
    )
    # a spec set back to a retired fingerprint is a change like any other: reprocessed anew
    assert decide([*live, row(2, FP, registry.RETIRED)], {"daily_spend": 1})[0] == "reprocess"


def test_retirement_waits_for_the_grace_period() -> None:
    grace = timedelta(hours=1)  # the reference spec's default
    recent = row(1, "a", registry.READY, replaced=NOW - grace + timedelta(minutes=1))
    old = row(2, "b", registry.READY, replaced=NOW - grace - timedelta(minutes=1))
    live = row(3, FP, registry.LIVE)
    failed = row(4, "c", registry.FAILED, replaced=None)
    due = due_for_retirement([PIPELINE], [recent, old, live, failed], {"daily_spend": 3}, NOW)
    assert [r.version for r in due] == [2]
    [p] = plan([PIPELINE], RegistryView([recent, old, live, failed], {"daily_spend": 3}, {}, NOW))
    assert p.retire == [2]
