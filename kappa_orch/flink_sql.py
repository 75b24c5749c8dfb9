"""The Flink SQL of one version: source DDL, sink DDL and the INSERT around the spec's SELECT.

Sources read each event as raw bytes plus its partition and offset; the stack's
KAPPA_PARSE function parses it once into the declared columns, strictly typed. A broken
event therefore does not fail or silently vanish inside the format. Each source becomes
three names:

- `kafka_<source>`: the raw table (payload, partition, offset, event time),
- `kappa_checked_<source>`: the same rows with `kappa_reason`, NULL for a valid event,
  else why it is not (not JSON, a declared field missing, null or of another type),
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

from kappa_orch.flink_sources import (
    LETTER_PAYLOAD_CHARS,
    NOT_UTF8,
    checked_source_ddl,
    checked_view,
    function_ddl,
    jdbc_table,
    options_sql,
    text_literal,
    valid_view_ddl,
)
from kappa_orch.spec.model import INPUT_COUNTS_TABLE, PipelineSpec, Source, parse_duration

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


DEAD_LETTER_SINK = "kappa_dead_letters"
INPUT_COUNTS_SINK = "kappa_input_counts"


def dead_letter_sink_ddl(topic: str, *, bootstrap: str) -> str:
    # keyed by source topic and partition: one source partition's letters go to one
    # partition of the dead-letter topic, in the order they were read, so a letter written
    # again after a restore is told apart from a new one (dead_letters)
    options = {
        "connector": "kafka",
        "topic": topic,
        "properties.bootstrap.servers": bootstrap,
        "key.format": "json",
        "key.fields": "source_topic;source_partition",
        "value.format": "json",
        "value.fields-include": "ALL",
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
        "`payload_encoding` STRING",
        "`payload_size` INT",
        "`payload_sha256` STRING",
        "`payload_truncated` BOOLEAN",
    ]
    body = ",\n  ".join(columns)
    return f"CREATE TEMPORARY TABLE `{DEAD_LETTER_SINK}` (\n  {body}\n) WITH (\n  {options_sql(options)}\n)"


def input_counts_sink_ddl(*, table: str, jdbc: Mapping[str, str]) -> str:
    options = {
        **jdbc_table(table, jdbc),
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
    return f"CREATE TEMPORARY TABLE `{INPUT_COUNTS_SINK}` (\n  {body}\n) WITH (\n  {options_sql(options)}\n)"


def dead_letter_insert(spec: PipelineSpec, source: Source, version: int) -> str:
    """The invalid events into the dead-letter topic: reason, where it came from, and the
    payload (its first LETTER_PAYLOAD_CHARS characters; base64 of the bytes when they are
    not UTF-8) with its size in bytes and SHA-256, so a letter never outgrows a Kafka message."""
    n = LETTER_PAYLOAD_CHARS
    not_utf8 = f"`kappa_reason` = {text_literal(NOT_UTF8)}"
    base64 = "TO_BASE64(`payload_bytes`)"
    payload = f"CASE WHEN {not_utf8} THEN SUBSTRING({base64}, 1, {n}) ELSE SUBSTRING(`payload`, 1, {n}) END"
    encoding = (
        f"CASE WHEN `payload_bytes` IS NULL THEN CAST(NULL AS STRING) "
        f"WHEN {not_utf8} THEN {text_literal('base64')} ELSE {text_literal('text')} END"
    )
    # Flink has no byte length of BYTES: from the base64 length, less its padding
    size = (
        f"CHAR_LENGTH({base64}) * 3 / 4 - "
        f"(CHAR_LENGTH({base64}) - CHAR_LENGTH(TRIM(TRAILING '=' FROM {base64})))"
    )
    truncated = f"CASE WHEN {not_utf8} THEN CHAR_LENGTH({base64}) > {n} ELSE CHAR_LENGTH(`payload`) > {n} END"
    columns = [
        text_literal(spec.name),
        str(version),
        text_literal(source.topic),
        "`kafka_partition`",
        "`kafka_offset`",
        "`kappa_reason`",
        payload,
        encoding,
        size,
        "SHA256(`payload_bytes`)",
        truncated,
    ]
    return (
        f"INSERT INTO `{DEAD_LETTER_SINK}`\n"
        f"SELECT {', '.join(columns)}\nFROM `{checked_view(source)}` WHERE `kappa_reason` IS NOT NULL"
    )


def input_counts_insert(spec: PipelineSpec, source: Source, version: int) -> str:
    invalid = "CASE WHEN `kappa_reason` IS NULL THEN 0 ELSE 1 END"
    return (
        f"INSERT INTO `{INPUT_COUNTS_SINK}`\n"
        f"SELECT {text_literal(spec.name)}, {version}, {text_literal(source.topic)}, "
        "`kafka_partition`, COUNT(*), "
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
        **jdbc_table(f"{target.schema_name}.{physical_table}", jdbc),
        "sink.buffer-flush.interval": "1s",
        "sink.buffer-flush.max-rows": "5000",
        "sink.max-retries": "3",
    }
    body = ",\n  ".join(columns)
    return f"CREATE TEMPORARY TABLE `kappa_sink` (\n  {body}\n) WITH (\n  {options_sql(options)}\n)"


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
    setup = function_ddl()
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
        configuration=job_configuration(spec),
    )


def job_configuration(spec: PipelineSpec) -> dict[str, str]:
    """The job's table options: JOB_CONFIGURATION, plus late firing when the spec allows lateness."""
    configuration = dict(JOB_CONFIGURATION)
    if spec.allowed_lateness is not None:
        # windows keep their state for the lateness and update their row on every late record
        configuration["table.exec.emit.allow-lateness"] = (
            f"{int(parse_duration(spec.allowed_lateness) * 1000)} ms"
        )
        configuration["table.exec.emit.late-fire.enabled"] = "true"
        configuration["table.exec.emit.late-fire.delay"] = "0 ms"
    return configuration
