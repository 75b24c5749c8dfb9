"""One repair at a time (issue 29, point 8), without servers: the repair sensor asks for no
second repair run while one is queued or running for the pipeline, and a failing
`flink_job_running` names the repair run in progress. Found: while a lost job was being
redeployed its description changed ("CANCELED" -> "(none recorded) is UNKNOWN"), the run
key with it, and the sensor started a second, redundant repair run; the check lost the
cause and did not mention the repair."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagster import (
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    SensorResult,
    SkipReason,
    build_sensor_context,
)

from kappa_orch.dagster import automation
from kappa_orch.dagster.health import JOB_RUNNING_CHECK
from kappa_orch.dagster.repairs import LOST_TAG, REPAIR_JOB, repairs_in_flight, told, with_repairs
from kappa_orch.dagster.stream_checks import Verdict
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.plan.decide import PipelinePlan
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.load import load_pipelines

ASSETS = Path(__file__).resolve().parents[2] / "assets"


def a_repair(instance: DagsterInstance, pipeline: str, status: DagsterRunStatus, lost: str = "") -> str:
    tags = {"kappa/pipeline": pipeline, **({LOST_TAG: lost} if lost else {})}
    run = DagsterRun(job_name=REPAIR_JOB, status=status, tags=tags)
    instance.add_run(run)
    return run.run_id


def lost(problem: str) -> PipelinePlan:
    return PipelinePlan(
        "daily_spend", 1, "f", "f", "repair", "v1's job is gone", repair=[1], problems=[problem]
    )


def test_only_queued_and_running_repairs_are_in_flight() -> None:
    with DagsterInstance.ephemeral() as instance:
        a_repair(instance, "daily_spend", DagsterRunStatus.SUCCESS)
        a_repair(instance, "merchant_risk", DagsterRunStatus.FAILURE)
        running = a_repair(instance, "daily_spend", DagsterRunStatus.STARTED, "v1: job j1 is CANCELED")
        found = repairs_in_flight(instance, ["daily_spend", "merchant_risk"])
    assert list(found) == ["daily_spend"]
    # the cause the plan saw when it asked for the repair: the registry knows no job meanwhile
    assert found["daily_spend"].startswith(
        f"repair run {running} (of: v1: job j1 is CANCELED) in progress since "
    )


def test_a_failing_job_check_names_the_repair_in_progress() -> None:
    failing = Verdict(JOB_RUNNING_CHECK, False, "v1: job (none recorded) is UNKNOWN")
    passing = Verdict(JOB_RUNNING_CHECK, True, "every job is alive")
    other = Verdict("lag_within_bounds", False, "lag 9,000")
    verdicts = {"daily_spend": [failing, other], "merchant_risk": [passing]}
    said = told(verdicts, {"daily_spend": "repair run r1 in progress since T", "merchant_risk": "x"})
    assert (
        said["daily_spend"][0].summary
        == "v1: job (none recorded) is UNKNOWN; repair run r1 in progress since T"
    )
    assert said["daily_spend"][1] == other and said["merchant_risk"] == [passing]
    with DagsterInstance.ephemeral() as instance:
        run = a_repair(instance, "daily_spend", DagsterRunStatus.STARTING)
        assert f"repair run {run} in progress" in with_repairs(instance, verdicts)["daily_spend"][0].summary


def test_the_repair_sensor_asks_for_one_repair_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    pipelines = load_pipelines(ASSETS)
    problem = ["v1: job j1 is CANCELED"]

    def plans(*args: Any, **kwargs: Any) -> list[PipelinePlan]:
        return [lost(problem[0])]

    monkeypatch.setattr(automation, "current_plan", plans)  # the registry's plan, without a registry
    sensor = automation.repair_sensor(pipelines)
    warehouse = WarehouseResource(url="postgresql+psycopg2://k:k@127.0.0.1:9/w")
    resources = {
        "warehouse": warehouse,
        "flink": FlinkResource(rest_url="http://127.0.0.1:9", sql_gateway_url="http://127.0.0.1:9"),
    }
    with DagsterInstance.ephemeral() as instance:
        with build_sensor_context(instance=instance, resources=resources) as context:
            first = sensor(context)
        assert isinstance(first, SensorResult) and len(first.run_requests or []) == 1
        assert (first.run_requests or [])[0].tags[LOST_TAG] == "v1: job j1 is CANCELED"
        running = a_repair(instance, "daily_spend", DagsterRunStatus.STARTED)
        problem[0] = "v1: job (none recorded) is UNKNOWN"  # the same loss, described anew meanwhile
        with build_sensor_context(instance=instance, resources=resources) as context:
            second = sensor(context)
        assert isinstance(second, SkipReason), second
        assert f"repair run {running} in progress" in (second.skip_message or "")
