"""Pipeline specs as Dagster assets: topics, versioned tables and serving aliases.

Per pipeline:
- each source topic is an external asset ``kafka/<topic parts>``, shared by every
  pipeline that reads it;
- ``<schema>/<table>__versions`` is the versioned table: materialising it deploys the
  current fingerprint (its ``code_version``) into ``table__vN`` unless that version
  already runs;
- ``<schema>/<table>`` is the alias: materialising it points the serving view at the
  current fingerprint's version.
"""

import re
from collections.abc import Iterable, Sequence

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableColumnDep,
    TableColumnLineage,
    TableSchema,
    asset,
)
from sqlalchemy import func, select

from kappa_orch import registry
from kappa_orch.deploy import deploy
from kappa_orch.errors import KappaError
from kappa_orch.resources.flink import FlinkResource
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.serving import point_alias, version_table
from kappa_orch.spec.fingerprint import fingerprint
from kappa_orch.spec.model import LoadedPipeline, PipelineSpec
from kappa_orch.spec.sql import column_lineage

_KEY_PART = re.compile(r"[^A-Za-z0-9_]")
_TAG_VALUE = re.compile(r"^[A-Za-z0-9_.-]{0,63}$")


def topic_key(topic: str) -> AssetKey:
    return AssetKey(["kafka", *(_KEY_PART.sub("_", part) for part in topic.split("."))])


def version_key(spec: PipelineSpec) -> AssetKey:
    return AssetKey([spec.target.schema_name, f"{spec.target.table_name}__versions"])


def alias_key(spec: PipelineSpec) -> AssetKey:
    return AssetKey([spec.target.schema_name, spec.target.table_name])


def _owners(spec: PipelineSpec) -> list[str]:
    owner = spec.owner.strip()
    return [owner if "@" in owner or owner.startswith("team:") else f"team:{_KEY_PART.sub('_', owner)}"]


def _tags(spec: PipelineSpec) -> dict[str, str]:
    return {k: v for k, v in spec.tags.items() if _TAG_VALUE.match(k) and _TAG_VALUE.match(v)}


def _schema(spec: PipelineSpec) -> TableSchema:
    return TableSchema(
        columns=[
            TableColumn(
                name=c.name,
                type=c.type,
                description=c.description or None,
                constraints=None,
            )
            for c in spec.target.columns
        ]
    )


def _topic_lineage(pipeline: LoadedPipeline) -> TableColumnLineage:
    spec = pipeline.spec
    by_name = {s.name: s for s in spec.sources}
    # the computed event-time column stands for the raw field it is computed from
    computed = {(s.name, s.event_time.column): s.event_time.from_column for s in spec.sources if s.event_time}
    deps = column_lineage(
        pipeline.sql_text,
        {s.name: s.sql_columns() for s in spec.sources},
        [c.name for c in spec.target.columns],
    )
    return TableColumnLineage(
        deps_by_column={
            output: [
                TableColumnDep(
                    asset_key=topic_key(by_name[source].topic),
                    column_name=computed.get((source, column), column),
                )
                for source, column in pairs
            ]
            for output, pairs in deps.items()
        }
    )


def topic_specs(pipelines: Iterable[LoadedPipeline]) -> list[AssetSpec]:
    readers: dict[str, list[str]] = {}
    for pipeline in pipelines:
        for source in pipeline.spec.sources:
            readers.setdefault(source.topic, []).append(pipeline.name)
    return [
        AssetSpec(
            key=topic_key(topic),
            description=f"Kafka topic {topic} (the log: source of truth).",
            group_name="kafka",
            kinds={"kafka"},
            metadata={"topic": topic, "read_by": ", ".join(sorted(set(names)))},
        )
        for topic, names in sorted(readers.items())
    ]


def version_asset(pipeline: LoadedPipeline) -> AssetsDefinition:
    spec = pipeline.spec
    code_version = fingerprint(pipeline)

    @asset(
        key=version_key(spec),
        deps=[topic_key(t) for t in sorted({s.topic for s in spec.sources})],
        code_version=code_version,
        group_name=spec.name,
        owners=_owners(spec),
        tags=_tags(spec),
        kinds={"flink", "postgres"},
        description=(spec.description or spec.name) + " (versioned tables: one per fingerprint)",
        metadata={
            "pipeline": spec.name,
            "owner": spec.owner,
            "alias": spec.target.alias,
            "fingerprint": code_version,
            "spec": pipeline.path,
            "sql": MetadataValue.md(f"```sql\n{pipeline.sql_text.strip()}\n```"),
            "dagster/column_schema": _schema(spec),
            "dagster/column_lineage": _topic_lineage(pipeline),
        },
    )
    def _version(
        context: AssetExecutionContext,
        kafka: KafkaResource,
        flink: FlinkResource,
        warehouse: WarehouseResource,
    ) -> MaterializeResult[None]:
        result = deploy(pipeline, kafka=kafka, flink=flink, warehouse=warehouse, log=context.log.info)
        plan = result.plan
        metadata: dict[str, object] = {
            "action": plan.action,
            "reason": plan.reason,
            "version": plan.version,
            "fingerprint": plan.fingerprint,
            "physical_table": f"{spec.target.schema_name}.{plan.physical_table}",
            "dagster/table_name": f"{spec.target.schema_name}.{plan.physical_table}",
            "flink_job_id": result.flink_job_id or "",
            "consumer_group": plan.group_id,
        }
        for topic, partitions in result.deployed_offsets.items():
            metadata[f"offsets_at_deploy/{topic}"] = MetadataValue.json(partitions)
        return MaterializeResult(metadata=metadata)  # type: ignore[arg-type]

    return _version


def alias_asset(pipeline: LoadedPipeline) -> AssetsDefinition:
    spec = pipeline.spec
    code_version = fingerprint(pipeline)

    @asset(
        key=alias_key(spec),
        deps=[version_key(spec)],
        code_version=code_version,
        group_name=spec.name,
        owners=_owners(spec),
        tags=_tags(spec),
        kinds={"postgres"},
        description=(spec.description or spec.name) + f" (serving alias {spec.target.alias})",
        metadata={
            "pipeline": spec.name,
            "alias": spec.target.alias,
            "dagster/table_name": spec.target.alias,
            "dagster/column_schema": _schema(spec),
            "dagster/column_lineage": TableColumnLineage(
                deps_by_column={
                    c.name: [TableColumnDep(asset_key=version_key(spec), column_name=c.name)]
                    for c in spec.target.columns
                }
            ),
        },
    )
    def _alias(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult[None]:
        current = fingerprint(pipeline)
        with warehouse.begin() as conn:
            registry.migrate(conn)
            registry.lock(conn, f"pipeline:{spec.name}")
            rows = registry.pipeline_versions(conn, spec.name)
            row = next(
                (r for r in rows if r.fingerprint == current and r.state in registry.RUNNING_STATES), None
            )
            if row is None:
                raise KappaError(
                    f"no running version of {spec.name!r} has the current fingerprint {current}",
                    f"materialise {version_key(spec).to_user_string()} first (it deploys the version)",
                )
            point_alias(conn, spec, row.physical_table)
            registry.set_live(conn, pipeline=spec.name, alias=spec.target.alias, version=row.version)
            table = version_table(spec, row.physical_table)
            rows_now = conn.execute(select(func.count()).select_from(table)).scalar_one()
        context.log.info(f"{spec.target.alias} -> {row.physical_table} ({rows_now} rows)")
        return MaterializeResult(
            metadata={
                "live_version": row.version,
                "physical_table": f"{spec.target.schema_name}.{row.physical_table}",
                "fingerprint": current,
                "dagster/row_count": int(rows_now),
            }
        )

    return _alias


def pipeline_assets(pipelines: Sequence[LoadedPipeline]) -> list[AssetsDefinition | AssetSpec]:
    assets: list[AssetsDefinition | AssetSpec] = list(topic_specs(pipelines))
    for pipeline in pipelines:
        assets.append(version_asset(pipeline))
        assets.append(alias_asset(pipeline))
    return assets
