"""The Flink SQL of one version: source DDL, sink DDL and the INSERT around the spec's SELECT.

Sources read each event as a raw string plus its partition and offset; declared
columns are computed from it with JSON_VALUE/TRY_CAST. A broken event therefore does
not fail or silently vanish inside the format. Each source becomes three names:

- `kafka_<source>`: the raw table (payload, partition, offset, computed columns),
- `kappa_checked_<source>`: the same rows with `kappa_reason`, NULL for a valid event,
  else why it is not (not JSON, a declared field missing, null or of the wrong type),
- `<source>`: the valid events' declared columns, which the spec's SQL reads.

A version's job runs three INSERTs over one read of each source: the spec's SELECT into
the version table, the invalid events into the pipeline's dead-letter topic (reason,
source topic, partition, offset and payload), and per-partition counters (records,
parsed, dead-lettered, first and last offset) into the registry's input_counts, which
the input-balance check reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kappa_orch.registry import INPUT_COUNTS_TABLE
from kappa_orch.spec.model import Column, PipelineSpec, Source, parse_duration

JOB_CONFIGURATION = {
    # event-time days and windows are UTC, whatever the cluster's clock zone
    "table.local-time-zone": "UTC",
    # group aggregates (the spec's and the input counters) update their state and emit
    # once per bundle of records instead of once per record; flushed at every checkpoint
    "table.exec.mini-batch.enabled": "true",
    "table.exec.mini-batch.allow-latency": "1s",
    "table.exec.mini-batch.size": "5000",
}


@dataclass(frozen=True)
class VersionJob:
    """Everything the SQL Gateway needs to run one version."""

    job_name: str
    setup: list[str]
    inserts: list[str]
    configuration: dict[str, str]


def _jdbc_table(table: str, jdbc: Mapping[str, str]) -> dict[str, str]:
    """The JDBC connector options of one warehouse table (source or sink)."""
    return {
        "connector": "jdbc",
        "url": jdbc["url"],
        "table-name": table,
        "username": jdbc["username"],
        "password": jdbc["password"],
    }


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


def raw_table(source: Source) -> str:
    return f"kafka_{source.name}"


def checked_view(source: Source) -> str:
    return f"kappa_checked_{source.name}"


def _text(value: str) -> str:
    # a STRING literal (plain literals of different lengths make CASE return padded CHAR(n))
    return "CAST('" + value.replace("'", "''") + "' AS STRING)"


def _is_integer_text(column: Column) -> str:
    # a CAST alone would truncate 1.5 to 1: integers must be written as integers
    return f"REGEXP(JSON_VALUE(`payload`, '$.{column.name}'), '^-?[0-9]+$')"


def rejection_reason(source: Source) -> str:
    """CASE expression: NULL for a valid event, else the first thing wrong with it.

    The first branch is the valid events' fast path, on the declared columns already
    computed (a JSON object's scalar fields, cast): the detailed branches, which parse
    the payload again, run only for broken events."""
    valid = [f"`{c.name}` IS NOT NULL" for c in source.columns]
    valid += [_is_integer_text(c) for c in source.columns if c.type in {"INT", "BIGINT"}]
    whens = [
        f"WHEN {' AND '.join(valid)} THEN CAST(NULL AS STRING)",
        f"WHEN `payload` IS NULL THEN {_text('empty payload (tombstone)')}",
        f"WHEN NOT (`payload` IS JSON OBJECT) THEN {_text('not a JSON object')}",
    ]
    for column in source.columns:
        path = f"'$.{column.name}'"
        # JSON_EXISTS is false for a missing field and for a null one
        whens.append(
            f"WHEN NOT JSON_EXISTS(`payload`, {path}) THEN {_text(f'field {column.name} is missing or null')}"
        )
        whens.append(
            f"WHEN JSON_VALUE(`payload`, {path}) IS NULL "
            f"THEN {_text(f'field {column.name} is not a scalar (object or array)')}"
        )
        wrong_type = _text(f"field {column.name} is not {column.type}")
        if column.type in {"INT", "BIGINT"}:
            whens.append(f"WHEN NOT {_is_integer_text(column)} THEN {wrong_type}")
        if column.type != "STRING":
            whens.append(f"WHEN `{column.name}` IS NULL THEN {wrong_type}")
    # never NULL unless the fast path holds: the SQL and the dead letters split the input exactly
    whens.append(f"ELSE {_text('does not match the source schema')}")
    return "CASE\n    " + "\n    ".join(whens) + "\n  END"


def checked_source_ddl(
    source: Source,
    *,
    bootstrap: str,
    group_id: str,
    startup_mode: str,
    extra_options: Mapping[str, str] | None = None,
) -> list[str]:
    """The raw table and the checked view of one source.

    The view computes the reason and the declared columns inside a one-element UNNEST:
    Flink 2.2 neither reuses common subexpressions within a Calc nor shares a Calc between
    the job's three INSERTs, so written as plain columns every INSERT would parse the JSON
    again. The UNNEST's input is one plan node, evaluated once per event and shared (25%
    more events/s measured with three INSERTs; bench/reprocess.py)."""
    raw = source.model_copy(update={"name": raw_table(source)})
    names = [c.name for c in source.columns]
    row = ",\n    ".join([rejection_reason(source)] + [f"`{n}`" for n in names])
    fields = ", ".join(["`kappa_reason`"] + [f"`kappa_v_{n}`" for n in names])
    selected = ["r.`payload`", "r.`kafka_partition`", "r.`kafka_offset`", "t.`kappa_reason`"]
    selected += [f"t.`kappa_v_{n}` AS `{n}`" for n in names]
    if source.event_time is not None:
        selected.append(f"r.`{source.event_time.column}`")  # the rowtime attribute, with its watermark
    return [
        source_ddl(
            raw,
            bootstrap=bootstrap,
            group_id=group_id,
            startup_mode=startup_mode,
            extra_options=extra_options,
        ),
        f"CREATE TEMPORARY VIEW `{checked_view(source)}` AS\n"
        f"SELECT {', '.join(selected)}\n"
        f"FROM `{raw_table(source)}` AS r\n"
        f"CROSS JOIN UNNEST(ARRAY[ROW(\n    {row}\n)]) AS t({fields})",
    ]


def valid_view_ddl(source: Source, *, where: str | None = None, union: str | None = None) -> str:
    """`<source>`: the declared columns of valid events (and `where`, when given), plus the
    rows of `union` (a SELECT of the same columns), when given."""
    columns = ", ".join(f"`{c}`" for c in source.sql_columns())
    condition = "`kappa_reason` IS NULL" + (f" AND {where}" if where else "")
    view = (
        f"CREATE TEMPORARY VIEW `{source.name}` AS\n"
        f"SELECT {columns} FROM `{checked_view(source)}` WHERE {condition}"
    )
    return view + (f"\nUNION ALL\n{union}" if union else "")


def snapshot_table(source: Source) -> str:
    return f"kappa_snapshot_{source.name}"


def snapshot_source_ddl(source: Source, *, jdbc: Mapping[str, str]) -> str:
    """The source's bootstrap snapshot (a warehouse table of typed events) as a JDBC source."""
    assert source.bootstrap is not None and source.event_time is not None
    event_time = source.event_time
    columns = [f"`{c.name}` {c.type}" for c in source.columns]
    columns.append(f"`{event_time.column}` AS TO_TIMESTAMP_LTZ(`{event_time.from_column}`, 3)")
    options = {
        **_jdbc_table(source.bootstrap.table, jdbc),
    }
    body = ",\n  ".join(columns)
    return (
        f"CREATE TEMPORARY TABLE `{snapshot_table(source)}` (\n  {body}\n) WITH (\n  {_options(options)}\n)"
    )


DEAD_LETTER_SINK = "kappa_dead_letters"
INPUT_COUNTS_SINK = "kappa_input_counts"


def dead_letter_sink_ddl(topic: str, *, bootstrap: str) -> str:
    options = {
        "connector": "kafka",
        "topic": topic,
        "properties.bootstrap.servers": bootstrap,
        "format": "json",
        "sink.delivery-guarantee": "at-least-once",
    }
    columns = [
        "`pipeline` STRING",
        "`version` INT",
        "`source_topic` STRING",
        "`source_partition` INT",
        "`source_offset` BIGINT",
        "`reason` STRING",
        "`payload` STRING",
    ]
    body = ",\n  ".join(columns)
    return f"CREATE TEMPORARY TABLE `{DEAD_LETTER_SINK}` (\n  {body}\n) WITH (\n  {_options(options)}\n)"


def input_counts_sink_ddl(*, table: str, jdbc: Mapping[str, str]) -> str:
    options = {
        **_jdbc_table(table, jdbc),
        "sink.buffer-flush.interval": "1s",
        "sink.max-retries": "3",
    }
    columns = [
        "`pipeline` STRING",
        "`version` INT",
        "`source_topic` STRING",
        "`kafka_partition` INT",
        "`records` BIGINT",
        "`parsed` BIGINT",
        "`dead_lettered` BIGINT",
        "`first_offset` BIGINT",
        "`last_offset` BIGINT",
        "PRIMARY KEY (`pipeline`, `version`, `source_topic`, `kafka_partition`) NOT ENFORCED",
    ]
    body = ",\n  ".join(columns)
    return f"CREATE TEMPORARY TABLE `{INPUT_COUNTS_SINK}` (\n  {body}\n) WITH (\n  {_options(options)}\n)"


def dead_letter_insert(spec: PipelineSpec, source: Source, version: int) -> str:
    return (
        f"INSERT INTO `{DEAD_LETTER_SINK}`\n"
        f"SELECT {_text(spec.name)}, {version}, {_text(source.topic)}, `kafka_partition`, `kafka_offset`, "
        f"`kappa_reason`, `payload`\nFROM `{checked_view(source)}` WHERE `kappa_reason` IS NOT NULL"
    )


def input_counts_insert(spec: PipelineSpec, source: Source, version: int) -> str:
    invalid = "CASE WHEN `kappa_reason` IS NULL THEN 0 ELSE 1 END"
    return (
        f"INSERT INTO `{INPUT_COUNTS_SINK}`\n"
        f"SELECT {_text(spec.name)}, {version}, {_text(source.topic)}, `kafka_partition`, COUNT(*), "
        f"CAST(SUM(1 - {invalid}) AS BIGINT), CAST(SUM({invalid}) AS BIGINT), "
        f"MIN(`kafka_offset`), MAX(`kafka_offset`)\n"
        f"FROM `{checked_view(source)}` GROUP BY `kafka_partition`"
    )


def sink_ddl(spec: PipelineSpec, *, physical_table: str, jdbc: Mapping[str, str]) -> str:
    target = spec.target
    columns = [f"`{c.name}` {c.type}" for c in target.columns]
    key = ", ".join(f"`{k}`" for k in target.primary_key)
    columns.append(f"PRIMARY KEY ({key}) NOT ENFORCED")
    options = {
        **_jdbc_table(f"{target.schema_name}.{physical_table}", jdbc),
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
    setup: list[str] = []
    for source in spec.sources:
        setup += checked_source_ddl(source, bootstrap=bootstrap, group_id=group_id, startup_mode=startup_mode)
        setup.append(valid_view_ddl(source))
    setup.append(sink_ddl(spec, physical_table=physical_table, jdbc=jdbc))
    setup.append(dead_letter_sink_ddl(spec.dead_letter_topic, bootstrap=bootstrap))
    setup.append(input_counts_sink_ddl(table=INPUT_COUNTS_TABLE, jdbc=jdbc))
    select = sql_text.strip().rstrip(";")
    inserts = [f"INSERT INTO `kappa_sink`\n{select}"]
    inserts += [dead_letter_insert(spec, source, version) for source in spec.sources]
    inserts += [input_counts_insert(spec, source, version) for source in spec.sources]
    return VersionJob(
        job_name=f"kappa:{spec.name}:v{version}",
        setup=setup,
        inserts=inserts,
        configuration=dict(JOB_CONFIGURATION),
    )
