# no `from __future__ import annotations`: Dagster reads the check's parameter types
"""Scheduled data quality: each serving alias's expectations, run by a checks-only job on
a schedule, without re-materialising anything. A failure shows as a failed asset check
with the failing expectation, its unexpected count and sample values."""

from collections.abc import Sequence
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetSelection,
    MetadataValue,
    ScheduleDefinition,
    asset_check,
    define_asset_job,
)

from kappa_orch.dagster.assets import alias_key
from kappa_orch.gate import expectations_outcome
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.model import LoadedPipeline

DATA_QUALITY_JOB = "kappa_data_quality"
SERVING_CHECK = "serving_expectations"


def alias_check(pipeline: LoadedPipeline) -> AssetChecksDefinition:
    spec = pipeline.spec

    @asset_check(
        asset=alias_key(spec),
        name=SERVING_CHECK,
        description="The spec's Great Expectations suite on what the alias serves now.",
    )
    def _check(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
        outcome = expectations_outcome(warehouse.url, spec, spec.target.table_name)
        context.log.info(f"{spec.target.alias}: {outcome.summary}")
        return AssetCheckResult(
            passed=outcome.passed,
            severity=AssetCheckSeverity.ERROR,
            description=outcome.summary,
            metadata={
                "summary": outcome.summary,
                **{
                    k: MetadataValue.json(v) if isinstance(v, list | dict) else v
                    for k, v in outcome.metadata.items()
                },
            },
        )

    return _check


def alias_checks(pipelines: Sequence[LoadedPipeline]) -> list[AssetChecksDefinition]:
    return [alias_check(p) for p in pipelines]


def data_quality_job(pipelines: Sequence[LoadedPipeline]) -> Any:  # an unresolved asset job
    """Runs every alias's serving check, and nothing else."""
    return define_asset_job(
        DATA_QUALITY_JOB,
        selection=AssetSelection.checks(*alias_checks(pipelines)),
        description="Data-quality checks of every serving alias (no materialisation).",
    )


def data_quality_schedule(
    pipelines: Sequence[LoadedPipeline], *, cron_schedule: str = "0 * * * *", timezone: str = "UTC"
) -> ScheduleDefinition:
    """The checks-only job on a cron schedule (hourly by default)."""
    return ScheduleDefinition(
        name="kappa_data_quality_schedule",
        job=data_quality_job(pipelines),
        cron_schedule=cron_schedule,
        execution_timezone=timezone,
        description="Runs the data-quality checks of every serving alias.",
    )
