# no `from __future__ import annotations`: Dagster reads the parameter types
"""Sensors that request runs, and the jobs they request: a reprocess when a spec's
fingerprint is not live, a retire when a replaced version is past its grace period.
They read the registry and request; the runs act."""

import time
from collections.abc import Sequence
from typing import Any

from dagster import (
    AssetSelection,
    Config,
    DefaultSensorStatus,
    OpExecutionContext,
    RunConfig,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    job,
    op,
    sensor,
)
from dagster import JobDefinition as _JobDefinition

from kappa_orch.dagster.assets import alias_key, version_key
from kappa_orch.errors import KappaError
from kappa_orch.plan import current_plan
from kappa_orch.reprocess import retire
from kappa_orch.resources.flink import FlinkResource
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.model import LoadedPipeline

REPROCESS_JOB = "kappa_reprocess"
RETIRE_JOB = "kappa_retire"


def reprocess_job(pipelines: Sequence[LoadedPipeline]) -> Any:  # an unresolved asset job (not public API)
    """Deploy, catch up, check (blocking) and swap; runs select one pipeline's two assets."""
    keys = [k for p in pipelines for k in (version_key(p.spec), alias_key(p.spec))]
    return define_asset_job(
        REPROCESS_JOB,
        selection=AssetSelection.assets(*keys),
        description="The Kappa reprocess: deploy the candidate, await catch-up, gate it, swap the alias.",
    )


class RetireConfig(Config):
    versions: list[str]  # "pipeline:version"


def retire_job(pipelines: Sequence[LoadedPipeline]) -> _JobDefinition:
    by_name = {p.name: p for p in pipelines}

    @op(name="retire_versions", description="Stop replaced versions' jobs and drop their tables.")
    def _retire(
        context: OpExecutionContext, config: RetireConfig, flink: FlinkResource, warehouse: WarehouseResource
    ) -> None:
        for item in config.versions:
            name, version = item.rsplit(":", 1)
            if name not in by_name:
                raise KappaError(f"no pipeline named {name!r} to retire a version of")
            retire(by_name[name], int(version), flink=flink, warehouse=warehouse, log=context.log.info)

    @job(name=RETIRE_JOB, description="Retire versions replaced longer ago than their grace period.")
    def _job() -> None:
        _retire()

    return _job


def reprocess_sensor(
    pipelines: Sequence[LoadedPipeline],
    *,
    name: str = "kappa_reprocess_sensor",
    minimum_interval_seconds: int = 30,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
) -> SensorDefinition:
    """Request one reprocess run per pipeline and fingerprint that is not live (the run
    key makes it fire once; a failed candidate is not retried)."""
    pipelines = list(pipelines)

    @sensor(
        name=name,
        job_name=REPROCESS_JOB,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Requests a reprocess when a spec's fingerprint differs from its live version.",
    )
    def _sensor(context: SensorEvaluationContext, warehouse: WarehouseResource) -> SensorResult | SkipReason:
        try:
            plans = current_plan(pipelines, warehouse)
        except KappaError as exc:
            return SkipReason(f"registry not reachable: {exc.problem}")
        by_name = {p.name: p for p in pipelines}
        requests = [
            RunRequest(
                run_key=f"reprocess:{p.pipeline}:{p.desired_fingerprint}",
                asset_selection=[version_key(by_name[p.pipeline].spec), alias_key(by_name[p.pipeline].spec)],
                tags={"kappa/pipeline": p.pipeline, "kappa/fingerprint": p.desired_fingerprint},
            )
            for p in plans
            if p.requests_run
        ]
        if not requests:
            return SkipReason("every pipeline serves its spec's fingerprint, or waits for a person")
        return SensorResult(run_requests=requests)

    return _sensor


def retire_sensor(
    pipelines: Sequence[LoadedPipeline],
    *,
    name: str = "kappa_retire_sensor",
    minimum_interval_seconds: int = 300,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
) -> SensorDefinition:
    """Request the retire job for versions replaced longer ago than their grace period."""
    pipelines = list(pipelines)

    @sensor(
        name=name,
        job_name=RETIRE_JOB,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Requests the retire job for replaced versions past their grace period.",
    )
    def _sensor(context: SensorEvaluationContext, warehouse: WarehouseResource) -> SensorResult | SkipReason:
        try:
            plans = current_plan(pipelines, warehouse)
        except KappaError as exc:
            return SkipReason(f"registry not reachable: {exc.problem}")
        due = [f"{p.pipeline}:{v}" for p in plans for v in p.retire]
        if not due:
            return SkipReason("no replaced version is past its grace period")
        return SensorResult(
            run_requests=[
                RunRequest(
                    run_key=f"retire:{','.join(due)}:{int(time.time() // 3600)}",
                    run_config=RunConfig(ops={"retire_versions": RetireConfig(versions=due)}),
                )
            ]
        )

    return _sensor
