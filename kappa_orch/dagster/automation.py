# no `from __future__ import annotations`: Dagster reads the parameter types
"""Sensors that request runs, and the jobs they request: a reprocess when a spec's
fingerprint is not live, a retire when a replaced version is past its grace period.
They read the registry and request; the runs act."""

import hashlib
import time
from collections.abc import Callable, Sequence
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

from kappa_orch.dagster.names import REPAIR_SENSOR, REPROCESS_SENSOR, RETIRE_SENSOR
from kappa_orch.dagster.repairs import LOST_TAG, REPAIR_JOB, instance_of, repairs_in_flight
from kappa_orch.dagster.runs import kappa_step
from kappa_orch.dagster.translator import DEFAULT_TRANSLATOR, KappaTranslator
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.errors import OperationRefused, ServiceUnavailable
from kappa_orch.lifecycle.repair import repair
from kappa_orch.lifecycle.services import Services
from kappa_orch.lifecycle.swap import retire
from kappa_orch.lineage.resource import OpenLineageResource
from kappa_orch.plan.decide import PipelinePlan, current_plan
from kappa_orch.registry.claims import owner_id
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.model import LoadedPipeline

REPROCESS_JOB = "kappa_reprocess"
RETIRE_JOB = "kappa_retire"


def reprocess_job(
    pipelines: Sequence[LoadedPipeline], *, translator: KappaTranslator = DEFAULT_TRANSLATOR
) -> Any:  # an unresolved asset job (not public API)
    """Deploy, catch up, check (blocking) and swap; runs select one pipeline's two assets."""
    keys = [
        k for p in pipelines for k in (translator.key("versions", p.spec), translator.key("alias", p.spec))
    ]
    return define_asset_job(
        REPROCESS_JOB,
        selection=AssetSelection.assets(*keys),
        description="The Kappa reprocess: deploy the candidate, await catch-up, gate it, swap the alias.",
    )


class RetireConfig(Config):
    versions: list[str]  # "pipeline:version"


def retire_job(pipelines: Sequence[LoadedPipeline]) -> _JobDefinition:
    """The job that stops replaced versions' jobs and drops their tables (requested by the retire sensor)."""
    by_name = {p.name: p for p in pipelines}

    @op(name="retire_versions", description="Stop replaced versions' jobs and drop their tables.")
    def _retire(
        context: OpExecutionContext,
        config: RetireConfig,
        kafka: KafkaResource,
        flink: FlinkResource,
        warehouse: WarehouseResource,
        openlineage: OpenLineageResource,
    ) -> None:
        services = Services(kafka, flink, warehouse, context.log.info, openlineage.lineage())
        with kappa_step(context):
            for item in config.versions:
                name, version = item.rsplit(":", 1)
                if name not in by_name:
                    raise OperationRefused(f"no pipeline named {name!r} to retire a version of")
                retire(by_name[name], int(version), services, owner=owner_id(context.run.run_id))

    @job(name=RETIRE_JOB, description="Retire versions replaced longer ago than their grace period.")
    def _job() -> None:
        _retire()

    return _job


class RepairConfig(Config):
    pipelines: list[str]


def repair_job(pipelines: Sequence[LoadedPipeline], git_commit: str | None = None) -> _JobDefinition:
    """The job that redeploys lost jobs of live and ready versions (requested by the repair sensor)."""
    by_name = {p.name: p for p in pipelines}

    @op(
        name="repair_versions",
        description="Redeploy live and ready versions whose Flink job is gone (from their last retained "
        "checkpoint); mark superseded candidates whose job is gone as failed.",
    )
    def _repair(
        context: OpExecutionContext,
        config: RepairConfig,
        kafka: KafkaResource,
        flink: FlinkResource,
        warehouse: WarehouseResource,
        openlineage: OpenLineageResource,
    ) -> None:
        services = Services(kafka, flink, warehouse, context.log.info, openlineage.lineage())
        with kappa_step(context):
            failed = []
            for name in config.pipelines:
                if name not in by_name:
                    raise OperationRefused(f"no pipeline named {name!r} to repair")
                result = repair(
                    by_name[name],
                    services,
                    owner=owner_id(context.run.run_id),
                    provenance=(context.run.run_id, git_commit),
                )
                failed += [f"{name} v{v}: {why}" for v, why in sorted(result.failed.items())]
            if failed:
                raise OperationRefused("could not repair:\n  " + "\n  ".join(failed), "see the run's log")

    @job(name=REPAIR_JOB, description="Redeploy lost jobs of live and ready versions.")
    def _job() -> None:
        _repair()

    return _job


PlanDecision = Callable[[SensorEvaluationContext, list[PipelinePlan]], list[RunRequest] | str]


def _plan_sensor(
    pipelines: Sequence[LoadedPipeline], decide: PlanDecision, *, with_flink: bool = False, **settings: Any
) -> SensorDefinition:
    """A sensor that reads the current plan and lets `decide` turn it into run requests
    (or a reason to skip). A service that does not answer is a skipped tick, not an error.
    `settings`: Dagster's sensor arguments (name, job, interval, default status, description)."""
    pipelines = list(pipelines)

    def tick(
        context: SensorEvaluationContext, warehouse: WarehouseResource, flink: FlinkResource | None
    ) -> SensorResult | SkipReason:
        try:
            plans = current_plan(pipelines, warehouse, flink)
        except ServiceUnavailable as exc:
            return SkipReason(f"not reachable: {exc.problem}")
        decided = decide(context, plans)
        return SkipReason(decided) if isinstance(decided, str) else SensorResult(run_requests=decided)

    # Dagster injects the resources a sensor's signature names: only the ones it uses
    if with_flink:

        @sensor(**settings)
        def _with_flink(
            context: SensorEvaluationContext, flink: FlinkResource, warehouse: WarehouseResource
        ) -> SensorResult | SkipReason:
            return tick(context, warehouse, flink)

        return _with_flink

    @sensor(**settings)
    def _sensor(context: SensorEvaluationContext, warehouse: WarehouseResource) -> SensorResult | SkipReason:
        return tick(context, warehouse, None)

    return _sensor


def repair_sensor(
    pipelines: Sequence[LoadedPipeline],
    *,
    minimum_interval_seconds: int = 30,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
    job: Any = None,
) -> SensorDefinition:
    """Request the repair job for pipelines with a degraded version (a live or ready
    version whose job is gone) or an abandoned candidate. The run key names the lost jobs,
    so each loss is repaired once; a job lost again later is a new key."""

    def decide(context: SensorEvaluationContext, plans: list[PipelinePlan]) -> list[RunRequest] | str:
        requests = []
        wanted = [p for p in plans if p.repair or p.abandon or p.action == "repair"]
        instance = instance_of(context) if wanted else None
        busy = repairs_in_flight(instance, [p.pipeline for p in wanted]) if instance else {}
        for p in wanted:
            if p.pipeline in busy:  # one repair at a time: what it finds it repairs
                context.log.info(f"{p.pipeline}: {busy[p.pipeline]}")
                continue
            # the problems name the lost jobs (a redeployed version has a new job id, so a
            # later loss is a new key)
            found = [*p.problems, *(f"abandon v{v}" for v in p.abandon)]
            context.log.info(f"{p.pipeline}: " + "; ".join(found))
            digest = hashlib.sha256("\n".join(found).encode()).hexdigest()[:16]
            requests.append(
                RunRequest(
                    run_key=f"repair:{p.pipeline}:{digest}",
                    run_config=RunConfig(ops={"repair_versions": RepairConfig(pipelines=[p.pipeline])}),
                    # what was lost, as the plan saw it: while the job is redeployed the
                    # registry knows no job, so the check names the cause from here
                    tags={
                        "kappa/pipeline": p.pipeline,
                        "kappa/reason": "lost job",
                        LOST_TAG: "; ".join(found)[:240],
                    },
                )
            )
        if not requests and busy:
            return "; ".join(f"{name}: {what}" for name, what in busy.items())
        return requests or "every live and ready version's job is alive"

    return _plan_sensor(
        pipelines,
        decide,
        with_flink=True,
        name=REPAIR_SENSOR,
        job=job or repair_job(pipelines),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Requests a repair when a live or ready version's Flink job is gone.",
    )


def reprocess_sensor(
    pipelines: Sequence[LoadedPipeline],
    *,
    minimum_interval_seconds: int = 30,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
    translator: KappaTranslator = DEFAULT_TRANSLATOR,
    job: Any = None,
) -> SensorDefinition:
    """Request one reprocess run per pipeline and fingerprint that is not live (the run
    key makes it fire once; a failed candidate is not retried)."""
    by_name = {p.name: p for p in pipelines}

    def decide(context: SensorEvaluationContext, plans: list[PipelinePlan]) -> list[RunRequest] | str:
        requests = [
            RunRequest(
                run_key=f"reprocess:{p.pipeline}:{p.desired_fingerprint}"
                + (f":{by_name[p.pipeline].spec.freshness}" if p.action == "reconfigure" else ""),
                asset_selection=[
                    translator.key("versions", by_name[p.pipeline].spec),
                    translator.key("alias", by_name[p.pipeline].spec),
                ],
                tags={"kappa/pipeline": p.pipeline, "kappa/fingerprint": p.desired_fingerprint},
            )
            for p in plans
            if p.requests_run
        ]
        return requests or "every pipeline serves its spec's fingerprint, or waits for a person"

    return _plan_sensor(
        pipelines,
        decide,
        name=REPROCESS_SENSOR,
        job=job or reprocess_job(pipelines, translator=translator),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Requests a reprocess when a spec's fingerprint differs from its live version.",
    )


def retire_sensor(
    pipelines: Sequence[LoadedPipeline],
    *,
    minimum_interval_seconds: int = 300,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
    job: Any = None,
) -> SensorDefinition:
    """Request the retire job for versions replaced longer ago than their grace period."""

    def decide(context: SensorEvaluationContext, plans: list[PipelinePlan]) -> list[RunRequest] | str:
        due = [f"{p.pipeline}:{v}" for p in plans for v in p.retire]
        if not due:
            return "no replaced version is past its grace period"
        return [
            RunRequest(
                run_key=f"retire:{','.join(due)}:{int(time.time() // 3600)}",
                run_config=RunConfig(ops={"retire_versions": RetireConfig(versions=due)}),
            )
        ]

    return _plan_sensor(
        pipelines,
        decide,
        name=RETIRE_SENSOR,
        job=job or retire_job(pipelines),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Requests the retire job for replaced versions past their grace period.",
    )
