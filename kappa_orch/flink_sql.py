"""The Flink SQL of one version: source DDL, sink DDL and the INSERT around the spec's SELECT.

Sources read each event as a raw string plus its partition and offset; declared
columns are computed from it with JSON_VALUE/TRY_CAST. A broken event therefore does
not fail or silently vanish inside the format: its columns are NULL, where the SQL
(and, later, the dead-letter path) can see it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kappa_orch.spec.model import Column, PipelineSpec, Source, parse_duration

JOB_CONFIGURATION = {
    # event-time days and windows are UTC, whatever the cluster's clock zone
    "table.local-time-zone": "UTC",
}


@dataclass(frozen=True)
class VersionJob:
    """Everything the SQL Gateway needs to run one version."""

    job_name: str
    setup: list[str]
    inserts: list[str]
    configuration: dict[str, str]


def _options(options: Mapping[str, str]) -> str:
    return ",\n  ".join(f"'{key}' = '{value}'" for key, value in options.items())


def _column_expression(column: Column) -> str:
    value = f"JSON_VALUE(`payload`, '$.{column.name}')"
    return value if column.type == "STRING" else f"TRY_CAST({value} AS {column.type})"


def source_ddl(
    source: Source,
    *,
    bootstrap: str,
    group_id: str,
    startup_mode: str,
    extra_options: Mapping[str, str] | None = None,
) -> str:
    columns = [
        "`payload` STRING",
        "`kafka_partition` INT METADATA FROM 'partition' VIRTUAL",
        "`kafka_offset` BIGINT METADATA FROM 'offset' VIRTUAL",
    ]
    columns += [f"`{c.name}` AS {_column_expression(c)}" for c in source.columns]
    if source.event_time is not None:
        event_time = source.event_time
        millis = f"TRY_CAST(JSON_VALUE(`payload`, '$.{event_time.from_column}') AS BIGINT)"
        delay_ms = int(parse_duration(event_time.watermark_delay) * 1000)
        columns.append(f"`{event_time.column}` AS TO_TIMESTAMP_LTZ({millis}, 3)")
        delay = f"INTERVAL '{delay_ms / 1000:g}' SECOND"
        columns.append(f"WATERMARK FOR `{event_time.column}` AS `{event_time.column}` - {delay}")
    options = {
        "connector": "kafka",
        "topic": source.topic,
        "properties.bootstrap.servers": bootstrap,
        "properties.group.id": group_id,
        "properties.auto.offset.reset": "earliest",
        "scan.startup.mode": startup_mode,
        **(extra_options or {}),
        "format": "raw",
    }
    body = ",\n  ".join(columns)
    return f"CREATE TEMPORARY TABLE `{source.name}` (\n  {body}\n) WITH (\n  {_options(options)}\n)"


def sink_ddl(spec: PipelineSpec, *, physical_table: str, jdbc: Mapping[str, str]) -> str:
    target = spec.target
    columns = [f"`{c.name}` {c.type}" for c in target.columns]
    key = ", ".join(f"`{k}`" for k in target.primary_key)
    columns.append(f"PRIMARY KEY ({key}) NOT ENFORCED")
    options = {
        "connector": "jdbc",
        "url": jdbc["url"],
        "table-name": f"{target.schema_name}.{physical_table}",
        "username": jdbc["username"],
        "password": jdbc["password"],
        "sink.buffer-flush.interval": "1s",
        "sink.buffer-flush.max-rows": "5000",
        "sink.max-retries": "3",
    }
    body = ",\n  ".join(columns)
    return f"CREATE TEMPORARY TABLE `kappa_sink` (\n  {body}\n) WITH (\n  {_options(options)}\n)"


def version_job(
    spec: PipelineSpec,
    sql_text: str,
    *,
    version: int,
    physical_table: str,
    group_id: str,
    bootstrap: str,
    jdbc: Mapping[str, str],
) -> VersionJob:
    startup_mode = "earliest-offset" if spec.start.position == "earliest" else "latest-offset"
    setup = [
        source_ddl(source, bootstrap=bootstrap, group_id=group_id, startup_mode=startup_mode)
        for source in spec.sources
    ]
    setup.append(sink_ddl(spec, physical_table=physical_table, jdbc=jdbc))
    select = sql_text.strip().rstrip(";")
    return VersionJob(
        job_name=f"kappa:{spec.name}:v{version}",
        setup=setup,
        inserts=[f"INSERT INTO `kappa_sink`\n{select}"],
        configuration=dict(JOB_CONFIGURATION),
    )
