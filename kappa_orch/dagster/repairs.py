"""Repairs in flight, as the Dagster instance knows them (issue 29, point 8): the repair
sensor requests no second repair run for a pipeline whose repair run is still queued or
running (found: the lost job's description changed while it was redeployed, "CANCELED"
became "(none recorded) UNKNOWN", a new run key, and a second, redundant repair run), and
a failing `flink_job_running` says which repair run is in progress since when."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from dagster import (
    DagsterInstance,
    DagsterInvariantViolationError,
    DagsterRunStatus,
    RunsFilter,
    SensorEvaluationContext,
)

from kappa_orch.dagster.health import JOB_RUNNING_CHECK
from kappa_orch.dagster.stream_checks import Verdict

REPAIR_JOB = "kappa_repair"
# the repair sensor's tag on a repair run: what was lost when it was requested
LOST_TAG = "kappa/lost"
IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


def repairs_in_flight(instance: DagsterInstance, pipelines: Sequence[str]) -> dict[str, str]:
    """Per pipeline with a repair run queued or running: "repair run <id> (of: <what was
    lost>) in progress since <time>" (the run's start, else its creation; UTC)."""
    found: dict[str, str] = {}
    runs = instance.get_run_records(filters=RunsFilter(job_name=REPAIR_JOB, statuses=IN_FLIGHT))
    for record in runs:
        pipeline = record.dagster_run.tags.get("kappa/pipeline") or ""
        if pipeline in pipelines and pipeline not in found:
            since = record.start_time or record.create_timestamp.timestamp()
            at = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            lost = record.dagster_run.tags.get(LOST_TAG)
            of = f" (of: {lost})" if lost else ""
            found[pipeline] = f"repair run {record.dagster_run.run_id}{of} in progress since {at}"
    return found


def told(verdicts: Mapping[str, list[Verdict]], repairs: Mapping[str, str]) -> dict[str, list[Verdict]]:
    """The verdicts, a failing `flink_job_running` saying which repair is in progress (pure)."""
    return {
        name: [
            replace(v, summary=f"{v.summary}; {repairs[name]}")
            if v.check == JOB_RUNNING_CHECK and not v.passed and name in repairs
            else v
            for v in found
        ]
        for name, found in verdicts.items()
    }


def with_repairs(
    instance: DagsterInstance, verdicts: Mapping[str, list[Verdict]]
) -> dict[str, list[Verdict]]:
    """`told` with the repairs in flight of the pipelines whose job check fails (the
    instance is asked only then)."""
    lost = [
        n
        for n, found in verdicts.items()
        if any(v.check == JOB_RUNNING_CHECK and not v.passed for v in found)
    ]
    return told(verdicts, repairs_in_flight(instance, lost)) if lost else dict(verdicts)


def instance_of(context: SensorEvaluationContext) -> DagsterInstance | None:
    """The sensor's Dagster instance (a daemon's always has one; a context built in a test
    without one has none: then no repair is named)."""
    try:
        return context.instance
    except DagsterInvariantViolationError:
        return None
