"""The deploy decision, from registry rows and job states alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kappa_orch import registry
from kappa_orch.deploy import plan_deploy
from kappa_orch.errors import KappaError
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
    with pytest.raises(KappaError, match="is being deployed by another run"):
        plan_deploy(PIPELINE, rows=[in_flight], job_states={}, now=NOW)
    stale = row(1, FP, registry.DEPLOYING, job=None, created=NOW - timedelta(hours=1))
    assert plan_deploy(PIPELINE, rows=[stale], job_states={}, now=NOW).action == "redeploy"


def test_a_retired_fingerprint_is_not_silently_revived() -> None:
    with pytest.raises(KappaError, match="which is retired"):
        plan_deploy(PIPELINE, rows=[row(1, FP, registry.RETIRED)], job_states={}, now=NOW)


def test_the_claim_holder_takes_over_an_unfinished_deploy_at_once() -> None:
    # found: a run killed while deploying blocked the pipeline for 10 minutes, although
    # the next run already held the pipeline's claim
    in_flight = row(1, FP, registry.DEPLOYING, job=None, created=NOW - timedelta(minutes=1))
    plan = plan_deploy(PIPELINE, rows=[in_flight], job_states={}, now=NOW, holds_claim=True)
    assert (plan.action, plan.version) == ("redeploy", 1)
    assert "holding the pipeline's claim" in plan.reason
