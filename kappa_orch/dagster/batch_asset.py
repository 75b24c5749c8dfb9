"""The daily-partitioned batch table of a pipeline with `batch:`: the same SQL over a
bounded slice of the log, one Dagster partition per day."""

from datetime import date

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    BackfillPolicy,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from kappa_orch.dagster.lineage import progress, table_schema, topic_lineage
from kappa_orch.dagster.runs import kappa_step
from kappa_orch.dagster.translator import DEFAULT_TRANSLATOR, KappaAsset, KappaTranslator
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.lifecycle.batch import run_batch
from kappa_orch.lifecycle.services import Services
from kappa_orch.lineage.resource import OpenLineageResource
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.model import LoadedPipeline


def batch_asset(
    pipeline: LoadedPipeline, *, translator: KappaTranslator = DEFAULT_TRANSLATOR
) -> AssetsDefinition:
    """The daily-partitioned batch table; a run covers up to `days_per_run` days in one job."""
    spec = pipeline.spec
    assert spec.batch is not None and spec.batch_table is not None
    batch = spec.batch

    given = translator.get_asset_spec(KappaAsset("batch", spec))

    @asset(
        key=given.key,
        deps=[translator.key("topic", topic=t) for t in sorted({s.topic for s in spec.sources})],
        code_version=pipeline.fingerprint,
        group_name=given.group_name,
        owners=list(given.owners),
        tags=dict(given.tags),
        kinds=set(given.kinds),
        partitions_def=DailyPartitionsDefinition(
            start_date=batch.start_date.isoformat(), timezone=batch.timezone
        ),
        # one Dagster run per backfill (so `dagster asset materialize --partition-range` works);
        # inside it, one Flink job per `days_per_run` consecutive days
        backfill_policy=BackfillPolicy.single_run(),
        description=given.description,
        metadata={
            **given.metadata,
            "pipeline": spec.name,
            "dagster/table_name": f"{spec.target.schema_name}.{spec.batch_table}",
            "dagster/column_schema": table_schema(pipeline),
            "dagster/column_lineage": topic_lineage(pipeline, translator),
        },
    )
    def _batch(
        context: AssetExecutionContext,
        kafka: KafkaResource,
        flink: FlinkResource,
        warehouse: WarehouseResource,
        openlineage: OpenLineageResource,
    ) -> MaterializeResult[None]:
        days = [date.fromisoformat(key) for key in context.partition_keys]
        with kappa_step(context):
            services = Services(kafka, flink, warehouse, progress(context), openlineage.lineage())
            result = run_batch(pipeline, days, services)
        return MaterializeResult(
            metadata={
                "days": len(result.days),
                "rows": sum(result.rows_per_day.values()),
                "rows_per_day": MetadataValue.json(
                    {d.isoformat(): n for d, n in result.rows_per_day.items()}
                ),
                "seconds": round(result.seconds, 1),
                "records_read_at_most": result.source_records,
            }
        )

    return _batch
