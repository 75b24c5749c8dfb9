# no `from __future__ import annotations`: Dagster reads the check's parameter types
"""Scheduled data quality: each serving alias's and each batch table's expectations, run
by a checks-only job on a schedule, without re-materialising anything. A failure shows
as a failed asset check with the failing expectation, its unexpected count and sample
values; on a batch table also with the days it fails on."""

from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetSelection,
    DefaultScheduleStatus,
    MetadataValue,
    ScheduleDefinition,
    asset_check,
    define_asset_job,
    in_process_executor,
)
from sqlalchemy import inspect

from kappa_orch.dagster.translator import DEFAULT_TRANSLATOR, KappaTranslator
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.errors import KappaError
from kappa_orch.lifecycle.alerting import Finding, tell
from kappa_orch.lifecycle.gate import (
    EXPECTATIONS,
    INPUT_BALANCE,
    Outcome,
    expectations_outcome,
    input_balance_outcome,
)
from kappa_orch.lifecycle.log_parity import LOG_PARITY_CHECK, verify_days
from kappa_orch.lifecycle.services import Services
from kappa_orch.lineage import emit as lineage_emit
from kappa_orch.lineage.resource import OpenLineageResource
from kappa_orch.registry import store as registry
from kappa_orch.registry.check_history import CheckOutcome, record_check
from kappa_orch.resources.alerts import AlertResource
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.model import LoadedPipeline

DATA_QUALITY_JOB = "kappa_data_quality"
SERVING_CHECK = "serving_expectations"
BATCH_CHECK = "batch_expectations"
LIVE_BALANCE_CHECK = "live_input_balance"


def _kept(
    context: AssetCheckExecutionContext,
    resources: tuple[WarehouseResource, OpenLineageResource, AlertResource],
    pipeline: LoadedPipeline,
    outcome: Outcome,
) -> None:
    """Record the outcome in the registry as its check's last (for `kappa-orch status`),
    send a failure (or its resolve) to the alert receivers, and tell OpenLineage (a
    `<pipeline>.data_quality` run over the live version)."""
    warehouse, openlineage, alerts = resources
    with registry.session(warehouse) as conn:
        checked = CheckOutcome(
            pipeline.name, outcome.name, outcome.passed, outcome.summary, context.run.run_id
        )
        record_check(conn, checked)
        live = registry.live_versions(conn).get(pipeline.name)
        rows = registry.pipeline_versions(conn, pipeline.name) if live is not None else []
    finding = Finding(pipeline.name, outcome.name, outcome.passed, outcome.summary)
    try:
        tell(warehouse, alerts, [finding], context.log.info)
    except KappaError as exc:
        context.log.warning(f"{pipeline.name}: the check's alert was not sent: {exc.problem}")
    served = next((r for r in rows if r.version == live), None)
    if served is not None:
        with lineage_emit.within(context.run.run_id, context.run.job_name):
            openlineage.lineage().checked(pipeline, served, [outcome], batch=outcome.name == BATCH_CHECK)


def _result(outcome: Outcome, **extra: Any) -> AssetCheckResult:
    return AssetCheckResult(
        passed=outcome.passed,
        severity=AssetCheckSeverity.ERROR,
        description=outcome.summary,
        metadata={
            "summary": outcome.summary,
            **{
                k: MetadataValue.json(v) if isinstance(v, list | dict) else v
                for k, v in {**outcome.metadata, **extra}.items()
            },
        },
    )


def alias_check(
    pipeline: LoadedPipeline, translator: KappaTranslator = DEFAULT_TRANSLATOR
) -> AssetChecksDefinition:
    spec = pipeline.spec

    @asset_check(
        asset=translator.key("alias", spec),
        name=SERVING_CHECK,
        description="The spec's Great Expectations suite on what the alias serves now.",
    )
    def _check(
        context: AssetCheckExecutionContext,
        warehouse: WarehouseResource,
        openlineage: OpenLineageResource,
        alerts: AlertResource,
    ) -> AssetCheckResult:
        outcome = expectations_outcome(warehouse.checks_url, spec, spec.target.table_name)
        _kept(context, (warehouse, openlineage, alerts), pipeline, replace(outcome, name=SERVING_CHECK))
        context.log.info(f"{spec.target.alias}: {outcome.summary}")
        return _result(outcome)

    return _check


def live_input_balance_check(
    pipeline: LoadedPipeline, translator: KappaTranslator = DEFAULT_TRANSLATOR
) -> AssetChecksDefinition:
    spec = pipeline.spec

    @asset_check(
        asset=translator.key("alias", spec),
        name=LIVE_BALANCE_CHECK,
        description="The live version's job: input = parsed + dead-lettered, per source partition.",
    )
    def _check(
        context: AssetCheckExecutionContext,
        warehouse: WarehouseResource,
        openlineage: OpenLineageResource,
        alerts: AlertResource,
    ) -> AssetCheckResult:
        with registry.session(warehouse) as conn:
            live = registry.live_versions(conn).get(spec.name)
            if live is None:
                return _result(Outcome(INPUT_BALANCE, True, "no live version yet"))
            outcome = input_balance_outcome(conn, spec, live)
        _kept(context, (warehouse, openlineage, alerts), pipeline, replace(outcome, name=LIVE_BALANCE_CHECK))
        context.log.info(f"{spec.target.alias} (v{live}): {outcome.summary}")
        return _result(outcome, version=live)

    return _check


def batch_check(
    pipeline: LoadedPipeline, translator: KappaTranslator = DEFAULT_TRANSLATOR
) -> AssetChecksDefinition:
    """The spec's expectations on the batch table; the days of unexpected rows are recorded
    (and, with `batch.recompute_failed_days`, the failed-day sensor requests their backfill)."""
    spec = pipeline.spec
    assert spec.batch is not None and spec.batch_table is not None
    batch, table = spec.batch, spec.batch_table

    @asset_check(
        asset=translator.key("batch", spec),
        name=BATCH_CHECK,
        description="The spec's Great Expectations suite on the batch table, with the days that fail.",
    )
    def _check(
        context: AssetCheckExecutionContext,
        warehouse: WarehouseResource,
        openlineage: OpenLineageResource,
        alerts: AlertResource,
    ) -> AssetCheckResult:
        with registry.session(warehouse) as conn:
            computed = inspect(conn).has_table(table, schema=spec.target.schema_name)
        if not computed:
            return _result(Outcome(EXPECTATIONS, True, "no day of the batch table is computed yet"))
        outcome = expectations_outcome(warehouse.checks_url, spec, table, day_column=batch.day_column)
        _kept(context, (warehouse, openlineage, alerts), pipeline, replace(outcome, name=BATCH_CHECK))
        failing = [date.fromisoformat(d) for d in outcome.metadata.get("failing_days", [])]
        marked: list[date] = []
        if failing:
            with warehouse.begin() as conn:
                marked = registry.mark_failed_days(
                    conn, pipeline=spec.name, days=failing, failure=outcome.summary
                )
            action = (
                "their backfill is requested by kappa_failed_day_sensor"
                if batch.recompute_failed_days
                else "set batch.recompute_failed_days to have them recomputed"
            )
            context.log.warning(f"{spec.name}: check failed on {len(failing)} day(s) ({action})")
        context.log.info(f"{spec.target.schema_name}.{table}: {outcome.summary}")
        return _result(outcome, recompute_requested=bool(batch.recompute_failed_days and marked))

    return _check


def log_parity_check(
    pipeline: LoadedPipeline, translator: KappaTranslator = DEFAULT_TRANSLATOR
) -> AssetChecksDefinition:
    """Closed days the alias serves, recomputed from the log by the pipeline's own SQL in
    batch and compared with it row by row (log_parity); two sampled days per run, so every
    closed day is checked over time."""
    spec = pipeline.spec

    @asset_check(
        asset=translator.key("alias", spec),
        name=LOG_PARITY_CHECK,
        description="A closed day of the alias recomputed from the log (the pipeline's SQL in batch) and "
        "compared row by row: a hand edit, a lost write or a sink defect is found, by primary key.",
    )
    def _check(
        context: AssetCheckExecutionContext,
        kafka: KafkaResource,
        flink: FlinkResource,
        warehouse: WarehouseResource,
        openlineage: OpenLineageResource,
        alerts: AlertResource,
    ) -> AssetCheckResult:
        try:
            parity = verify_days(pipeline, Services(kafka, flink, warehouse, context.log.info))
        except KappaError as exc:
            return _result(Outcome(LOG_PARITY_CHECK, False, f"not checked: {exc.problem}"))
        if parity is None:
            return _result(Outcome(LOG_PARITY_CHECK, True, "no closed day served yet"))
        metadata = {
            "days": [d.isoformat() for d in parity.days],
            "rows": parity.rows,
            "missing": parity.missing,
            "not_in_log": parity.extra,
            "differing": parity.differing,
            "sample_keys": parity.samples,
        }
        outcome = Outcome(LOG_PARITY_CHECK, parity.passed, parity.summary(spec.target.alias), metadata)
        _kept(context, (warehouse, openlineage, alerts), pipeline, replace(outcome, name=LOG_PARITY_CHECK))
        context.log.info(outcome.summary)
        return _result(outcome)

    return _check


def data_quality_checks(
    pipelines: Sequence[LoadedPipeline], translator: KappaTranslator = DEFAULT_TRANSLATOR
) -> list[AssetChecksDefinition]:
    """The scheduled checks: each alias's expectations and its live job's input balance,
    and each batch table's expectations; for pipelines with days (`batch:`), a closed day
    of the alias recomputed from the log."""
    checks = [alias_check(p, translator) for p in pipelines]
    checks += [live_input_balance_check(p, translator) for p in pipelines]
    batch = [p for p in pipelines if p.spec.batch is not None]
    return (
        checks
        + [batch_check(p, translator) for p in batch]
        + [log_parity_check(p, translator) for p in batch]
    )


def data_quality_job(
    pipelines: Sequence[LoadedPipeline], translator: KappaTranslator = DEFAULT_TRANSLATOR
) -> Any:  # an unresolved asset job
    """Runs every alias's serving check, and nothing else, in one process (a subprocess
    per check made a run of 7 checks take 11 minutes)."""
    return define_asset_job(
        DATA_QUALITY_JOB,
        selection=AssetSelection.checks(*data_quality_checks(pipelines, translator)),
        executor_def=in_process_executor,
        description="Data-quality checks of every serving alias and batch table (no materialisation).",
    )


def data_quality_schedule(
    pipelines: Sequence[LoadedPipeline],
    *,
    cron_schedule: str = "0 * * * *",
    timezone: str = "UTC",
    default_status: DefaultScheduleStatus = DefaultScheduleStatus.RUNNING,
    translator: KappaTranslator = DEFAULT_TRANSLATOR,
) -> ScheduleDefinition:
    """The checks-only job on a cron schedule (hourly by default), running from the start."""
    return ScheduleDefinition(
        name="kappa_data_quality_schedule",
        job=data_quality_job(pipelines, translator),
        cron_schedule=cron_schedule,
        execution_timezone=timezone,
        default_status=default_status,
        description="Runs the data-quality checks of every serving alias and batch table.",
    )
