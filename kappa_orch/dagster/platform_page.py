"""One page for the platform (issue 29, point 3): the `kappa/platform` asset, whose
observation is a table of every pipeline (alias, live version, health, lag, checkpoint
age, late records, dead letters, last swap, last scheduled check): the same rows as
`kappa-orch status` prints (lifecycle.status_table), refreshed by the sensor
`kappa_platform_page`. The operator on call opens one asset instead of one group per
pipeline."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from dagster import (
    AssetKey,
    AssetObservation,
    AssetSpec,
    DefaultSensorStatus,
    MetadataValue,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    TableColumn,
    TableRecord,
    TableSchema,
    sensor,
)

from kappa_orch.dagster.names import PLATFORM_PAGE
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.errors import KappaError
from kappa_orch.lifecycle.services import Services
from kappa_orch.lifecycle.status import PipelineStatus, pipeline_status
from kappa_orch.lifecycle.status_table import PIPELINE_HEADER, overview_rows
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.model import LoadedPipeline

PLATFORM_KEY = AssetKey(["kappa", "platform"])
COLUMNS = [h.lower().replace(" ", "_") for h in PIPELINE_HEADER]
HEALTHY = frozenset({"in sync"})


def platform_asset() -> AssetSpec:
    return AssetSpec(
        PLATFORM_KEY,
        group_name="platform",
        description="Every pipeline at a glance: alias, live version, health, lag, checkpoint age, late "
        "records, dead letters, last swap and last scheduled check (as `kappa-orch status` prints them), "
        f"observed by the sensor {PLATFORM_PAGE}.",
    )


def platform_observation(statuses: Sequence[PipelineStatus], now: datetime) -> AssetObservation:
    """The platform's table as an observation of the platform asset (pure)."""
    rows = [cells for cells, _ in overview_rows(statuses, now)]
    records = [TableRecord(dict(zip(COLUMNS, cells, strict=True))) for cells in rows]
    schema = TableSchema(columns=[TableColumn(name, "string") for name in COLUMNS])
    attention = [cells[0] for cells in rows if cells[3] not in HEALTHY]
    summary = f"{len(rows)} pipeline(s); " + (
        f"needing attention: {', '.join(attention)}" if attention else "every one in sync"
    )
    return AssetObservation(
        asset_key=PLATFORM_KEY,
        metadata={
            "pipelines": MetadataValue.table(records, schema),
            "needing_attention": len(attention),
            "summary": summary,
        },
    )


def platform_page_sensor(
    pipelines: Sequence[LoadedPipeline],
    *,
    minimum_interval_seconds: int = 60,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
) -> SensorDefinition:
    """The sensor that observes the platform asset (see the module's docstring)."""

    @sensor(
        name=PLATFORM_PAGE,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Observes kappa/platform: every pipeline's row of `kappa-orch status`.",
    )
    def _page(
        context: SensorEvaluationContext,
        kafka: KafkaResource,
        flink: FlinkResource,
        warehouse: WarehouseResource,
    ) -> SensorResult | SkipReason:
        try:
            statuses = pipeline_status(pipelines, Services(kafka, flink, warehouse, context.log.warning))
        except KappaError as exc:
            return SkipReason(f"the platform page was not refreshed: {exc.problem}")
        observed = platform_observation(statuses, datetime.now(UTC))
        context.log.info(str(observed.metadata["summary"].value))
        return SensorResult(asset_events=[observed])

    return _page
