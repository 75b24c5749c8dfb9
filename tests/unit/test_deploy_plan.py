"""The deploy decision, from registry rows and job states alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kappa_orch.errors import ClaimHeld
from kappa_orch.plan.decide import RegistryView, plan_deploy
from kappa_orch.registry import store as registry
from kappa_orch.spec.fingerprint import fingerprint
from kappa_orch.spec.load import load_pipelines

ASSETS = Path(__file__).resolve().parents[2] / "assets"
PIPELINE = next(p for p in load_pipelines(ASSETS) if p.name == "daily_spend")
FP = fingerprint(PIPELINE)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def row(
    version: int, fp: str, state: str, job: str | None = "job", created: datetime = NOW
) -> registry.VersionRow:
    return registry.VersionRow(
        pipeline="daily_spend",
        version=version,
        fingerprint=fp,
        physical_table=f"daily_spend__v{version}",
        state=state,
        flink_job_id=job,
        group_id=f"kappa.daily_spend.v{version}",
        deployed_offsets=None,
        error=None,
        created_at=created,
    )


def test_first_deploy_makes_v1_without_the_alias() -> None:
    # the alias appears only when v1 has caught up and passed its gate (the swap)
    plan = plan_deploy(PIPELINE, rows=[], job_states={}, now=NOW)
    assert (plan.action, plan.version, plan.physical_table, plan.group_id) == (
        "deploy",
        1,
        "daily_spend__v1",
        "kappa.daily_spend.v1",
    )


def test_running_fingerprint_is_left_alone() -> None:
    plan = plan_deploy(PIPELINE, rows=[row(1, FP, registry.LIVE)], job_states={"job": "RUNNING"}, now=NOW)
    assert (plan.action, plan.version) == ("none", 1)


def test_new_fingerprint_gets_the_next_version_beside_the_live_one() -> None:
    rows = [row(1, "old", registry.READY, "j1"), row(2, "older", registry.LIVE, "j2")]
    plan = plan_deploy(PIPELINE, rows=rows, job_states={"j1": "RUNNING", "j2": "RUNNING"}, now=NOW)
    assert (plan.action, plan.version) == ("deploy", 3)


@pytest.mark.parametrize(("state", "job_state"), [(registry.FAILED, "FAILED"), (registry.LIVE, "UNKNOWN")])
def test_failed_or_vanished_job_is_redeployed_in_place(state: str, job_state: str) -> None:
    plan = plan_deploy(PIPELINE, rows=[row(1, FP, state)], job_states={"job": job_state}, now=NOW)
    assert (plan.action, plan.version) == ("redeploy", 1)


def test_a_deploy_in_flight_is_refused_then_taken_over_when_stale() -> None:
    in_flight = row(1, FP, registry.DEPLOYING, job=None, created=NOW - timedelta(minutes=1))
    waiting = plan_deploy(PIPELINE, rows=[in_flight], job_states={}, now=NOW)
    assert waiting.action == "wait"
    with pytest.raises(ClaimHeld, match="is being deployed by another run"):
        raise waiting.refusal() or AssertionError("no refusal")
    stale = row(1, FP, registry.DEPLOYING, job=None, created=NOW - timedelta(hours=1))
    assert plan_deploy(PIPELINE, rows=[stale], job_states={}, now=NOW).action == "redeploy"


def test_a_retired_fingerprint_is_deployed_again_as_a_new_version() -> None:
    # found: a spec set back to a retired fingerprint was refused ("fingerprint ... was
    # version 6, which is retired"); only a no-op SQL edit got past it
    again = plan_deploy(PIPELINE, rows=[row(1, FP, registry.RETIRED, None)], job_states={}, now=NOW)
    assert (again.action, again.version, again.releases) == ("deploy", 2, 1)
    assert "v1 of this fingerprint was retired: deploying it again as a new version" in again.reason
    # retired since this change: its fingerprint was set aside, the spec's is new again
    aside = plan_deploy(PIPELINE, rows=[row(1, f"{FP}~v1", registry.RETIRED, None)], job_states={}, now=NOW)
    assert (aside.action, aside.version, aside.releases) == ("deploy", 2, None)


def test_the_claim_holder_takes_over_an_unfinished_deploy_at_once() -> None:
    # found: a run killed while deploying blocked the pipeline for 10 minutes, although
    # the next run already held the pipeline's claim
    in_flight = row(1, FP, registry.DEPLOYING, job=None, created=NOW - timedelta(minutes=1))
    plan = plan_deploy(PIPELINE, rows=[in_flight], job_states={}, now=NOW, holds_claim=True)
    assert (plan.action, plan.version) == ("redeploy", 1)
    assert "holding the pipeline's claim" in plan.reason


@pytest.mark.parametrize("state", list(registry.VersionState))
@pytest.mark.parametrize("job_state", ["RUNNING", "FAILED", "UNKNOWN"])
def test_the_plan_and_a_deploy_answer_from_one_rule(state: registry.VersionState, job_state: str) -> None:
    # found: plan.py and deploy.py encoded overlapping rules and answered differently for
    # retired and failed candidates; the plan now carries the deploy step it is built from
    from kappa_orch.plan.decide import plan

    live_row = row(1, "0" * 16, registry.LIVE, job="live-job")
    candidate = row(2, FP, state, job="job", created=NOW - timedelta(hours=1))
    states = {"live-job": "RUNNING", "job": job_state}
    [planned] = plan([PIPELINE], RegistryView([live_row, candidate], {"daily_spend": 1}, {}, NOW, states))
    step = plan_deploy(PIPELINE, rows=[live_row, candidate], job_states=states, now=NOW)
    assert planned.deploy == step
    if step.action == "refused":
        assert (planned.action, planned.detail) == ("blocked", step.reason)
    if state == registry.FAILED:
        # automation does not retry it; a person's deploy re-checks or redeploys it
        assert planned.action == "blocked" and step.action in ("none", "redeploy")


def test_a_version_whose_log_was_replaced_is_replayed_into_a_new_version() -> None:
    from dataclasses import replace

    live = replace(row(1, FP, registry.LIVE, "j1"), source_topic_ids={"payments.authorizations": "A"})
    same = plan_deploy(
        PIPELINE,
        rows=[live],
        job_states={"j1": "RUNNING"},
        now=NOW,
        topic_ids={"payments.authorizations": "A"},
    )
    assert (same.action, same.version, same.releases) == ("none", 1, None)
    # deleted and created again under the job: a new id
    plan = plan_deploy(
        PIPELINE,
        rows=[live],
        job_states={"j1": "RUNNING"},
        now=NOW,
        topic_ids={"payments.authorizations": "B"},
    )
    assert (plan.action, plan.version, plan.releases) == ("deploy", 2, 1)
    assert "log of payments.authorizations was replaced under v1" in plan.reason
    # not asked (no ids) or a version deployed before ids were recorded: nothing to compare
    assert plan_deploy(PIPELINE, rows=[live], job_states={"j1": "RUNNING"}, now=NOW).action == "none"
    unknown = replace(live, source_topic_ids=None)
    assert (
        plan_deploy(
            PIPELINE,
            rows=[unknown],
            job_states={"j1": "RUNNING"},
            now=NOW,
            topic_ids={"payments.authorizations": "B"},
        ).action
        == "none"
    )


def test_a_forced_replay_makes_a_new_version_of_a_live_fingerprint() -> None:
    # issue 26, point 6 (and 29, point 4): `reprocess --force` rebuilds what the spec says
    live = row(1, FP, registry.LIVE)
    forced = plan_deploy(PIPELINE, rows=[live], job_states={"job": "RUNNING"}, now=NOW, force=True)
    assert (forced.action, forced.version, forced.releases) == ("deploy", 2, 1)
    assert "--force" in forced.reason
    assert plan_deploy(PIPELINE, rows=[live], job_states={"job": "RUNNING"}, now=NOW).action == "none"
