"""The Flink SQL of a version's sources: each event read as raw bytes with its partition
and offset, parsed once by the stack's KAPPA_PARSE function into its declared columns
(strictly typed) or the reason it is dead-lettered instead (see flink_sql for the whole job)."""

from __future__ import annotations

from collections.abc import Mapping

from kappa_orch.spec.model import Source, parse_duration

# the stack's wrapper of Flink's JDBC sink: a refused write fails its own job, never the
# TaskManager (kappa_orch/stack/java/io/kappaorch/flink/ContainedJdbcFactory.java)
JDBC_SINK_CONNECTOR = "kappa-jdbc"


def jdbc_table(table: str, jdbc: Mapping[str, str], *, sink: bool = False) -> dict[str, str]:
    """The JDBC connector options of one warehouse table (source, or `sink`): a job role's
    URL names its role and the plugin that derives its password (no password option)."""
    connector = JDBC_SINK_CONNECTOR if sink else "jdbc"
    options = {"connector": connector, "url": jdbc["url"], "table-name": table}
    options.update({key: jdbc[key] for key in ("username", "password") if key in jdbc})
    return options


def literal(value: object) -> str:
    """A Flink SQL string literal: a quote inside is written twice (Flink has no
    backslash escapes), so no value (a password, a topic) can end the literal early."""
    return "'" + str(value).replace("'", "''") + "'"


def options_sql(options: Mapping[str, str]) -> str:
    return ",\n  ".join(f"{literal(key)} = {literal(value)}" for key, value in options.items())


# the payload as text: sources read bytes, so that a payload which is not valid UTF-8 is
# seen as such (decoding replaces bad bytes with U+FFFD and a mangled event could pass)
# (a CAST decodes and encodes UTF-8; DECODE/ENCODE would not compile in the watermark generator)
PAYLOAD_TEXT = "CAST(`payload_bytes` AS STRING)"
# a dead letter keeps at most this much of its payload (characters of text, or of base64
# for bytes that are not UTF-8), with the payload's size and SHA-256: escaped as JSON a
# letter stays far under Kafka's default 1 MiB message size, whatever the event's size
LETTER_PAYLOAD_CHARS = 65_536
NOT_UTF8 = "payload is not valid UTF-8"  # EventParser.NOT_UTF8


# the stack's Java functions (kappa_orch/stack/java/io/kappaorch/flink), on the cluster's
# classpath: each event is parsed once, strictly, in one place (EventParser)
PARSE_FUNCTION = "KAPPA_PARSE"
EVENT_MILLIS_FUNCTION = "KAPPA_EVENT_MILLIS"
FUNCTION_CLASSES = {
    PARSE_FUNCTION: "io.kappaorch.flink.ParseEvent",
    EVENT_MILLIS_FUNCTION: "io.kappaorch.flink.EventMillis",
}


def function_ddl() -> list[str]:
    return [
        f"CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS {name} AS {literal(cls)} LANGUAGE JAVA"
        for name, cls in FUNCTION_CLASSES.items()
    ]


def interval(duration: str) -> str:
    """A duration as a Flink interval literal (`INTERVAL '7200' SECOND` would overflow
    SECOND's default precision of 2 digits: written as days to milliseconds instead)."""
    total_ms = round(parse_duration(duration) * 1000)
    seconds, ms = divmod(total_ms, 1000)
    minutes, sec = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    days, hour = divmod(hours, 24)
    return f"INTERVAL '{days} {hour:02d}:{minute:02d}:{sec:02d}.{ms:03d}' DAY(3) TO SECOND(3)"


def event_schema(source: Source) -> str:
    """The source's columns and event-time rule as the Java functions read them (EventSchema):
    `from=ts|ahead_ms=3600000|ahead=1h|account:STRING|amount:DECIMAL(10, 2):coerce`."""
    parts: list[str] = []
    event_time = source.event_time
    if event_time is not None:
        parts.append(f"from={event_time.from_column}")
        if event_time.max_ahead is not None:
            ahead_ms = round(parse_duration(event_time.max_ahead) * 1000)
            parts += [f"ahead_ms={ahead_ms}", f"ahead={event_time.max_ahead}"]
    parts += [f"{c.name}:{c.type}" + (":coerce" if c.coerce else "") for c in source.columns]
    return "|".join(parts)


def _call(function: str, source: Source, table: str = "") -> str:
    prefix = f"{table}." if table else ""
    schema = literal(event_schema(source))
    return f"{function}({prefix}`payload_bytes`, {prefix}`kafka_timestamp`, {schema})"


def source_ddl(
    source: Source,
    *,
    bootstrap: str,
    group_id: str,
    startup_mode: str,
    extra_options: Mapping[str, str] | None = None,
) -> str:
    """The raw table: the payload's bytes, partition, offset and log time, and the event
    time with its watermark.

    The event time is NULL for every event that is not valid (it will be dead-lettered,
    e.g. an implausible event time), and Flink's watermark generator skips NULLs: only
    valid events move event time. The watermark is pushed into the Kafka source, which
    tracks it per partition and emits the minimum over partitions, so a partition read
    ahead during a replay makes no other partition's events late."""
    columns = [
        "`payload_bytes` BYTES",
        "`kafka_partition` INT METADATA FROM 'partition' VIRTUAL",
        "`kafka_offset` BIGINT METADATA FROM 'offset' VIRTUAL",
        "`kafka_timestamp` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL",
        f"`payload` AS {PAYLOAD_TEXT}",
    ]
    if source.event_time is not None:
        event_time = source.event_time
        columns.append(
            f"`{event_time.column}` AS TO_TIMESTAMP_LTZ({_call(EVENT_MILLIS_FUNCTION, source)}, 3)"
        )
        delay = interval(event_time.watermark_delay)
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
    return f"CREATE TEMPORARY TABLE `{source.name}` (\n  {body}\n) WITH (\n  {options_sql(options)}\n)"


def raw_table(source: Source) -> str:
    return f"kafka_{source.name}"


def checked_view(source: Source) -> str:
    return f"kappa_checked_{source.name}"


def text_literal(value: str) -> str:
    # a STRING literal (plain literals of different lengths make CASE return padded CHAR(n))
    return f"CAST({literal(value)} AS STRING)"


def late_reason(lateness: str | None) -> str:
    """The dead-letter reason of a record that arrived behind the watermark (less the
    allowed lateness): one text per pipeline, so letters are counted by reason."""
    suffix = f" less allowed_lateness {lateness}" if lateness else ""
    return f"late: event time behind the watermark{suffix} on arrival"


def _late_case(source: Source, lateness: str | None) -> str:
    """`kappa_reason`, or the late reason for a valid event whose event time is at or behind
    the watermark (less the allowed lateness) when it is read. Every operator that drops late
    records compares with a watermark no newer than the source's, so the records routed
    here are the only ones dropped: counted exactly, in input records, and kept."""
    assert source.event_time is not None
    column = f"r.`{source.event_time.column}`"
    behind = f"CURRENT_WATERMARK({column})" + (f" - {interval(lateness)}" if lateness else "")
    late = text_literal(late_reason(lateness))
    return (
        f"CASE WHEN t.`kappa_reason` IS NULL AND {column} <= {behind} THEN {late} "
        "ELSE t.`kappa_reason` END AS `kappa_reason`"
    )


def checked_source_ddl(
    source: Source,
    *,
    bootstrap: str,
    group_id: str,
    startup_mode: str,
    extra_options: Mapping[str, str] | None = None,
    route_late: bool = False,
    lateness: str | None = None,
) -> list[str]:
    """The raw table and the checked view of one source (after function_ddl's statements).

    The view parses each event once (KAPPA_PARSE) inside a one-element UNNEST: Flink 2.2
    neither reuses common subexpressions within a Calc nor shares a Calc between the job's
    three INSERTs, so written as plain columns every INSERT would parse the JSON again. The
    UNNEST's input is one plan node, evaluated once per event and shared.

    `route_late`: the job has operators that drop late records: a valid event behind the
    watermark (less `lateness`, the allowed lateness) then gets the late reason and is
    dead-lettered, with the watermark it arrived at as `kappa_watermark`."""
    raw = source.model_copy(update={"name": raw_table(source)})
    names = [c.name for c in source.columns]
    fields = ", ".join(["`kappa_reason`"] + [f"`kappa_v_{n}`" for n in names])
    selected = ["r.`payload_bytes`", "r.`payload`", "r.`kafka_partition`", "r.`kafka_offset`"]
    routed = route_late and source.event_time is not None
    selected.append(_late_case(source, lateness) if routed else "t.`kappa_reason`")
    selected += [f"t.`kappa_v_{n}` AS `{n}`" for n in names]
    if source.event_time is not None:
        column = source.event_time.column
        selected.append(f"r.`{column}`")  # the rowtime attribute, with its watermark
        watermark = f"CURRENT_WATERMARK(r.`{column}`)" if routed else "CAST(NULL AS TIMESTAMP_LTZ(3))"
        selected.append(f"{watermark} AS `kappa_watermark`")
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
        f"CROSS JOIN UNNEST(ARRAY[{_call(PARSE_FUNCTION, source, 'r')}]) AS t({fields})",
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
        **jdbc_table(source.bootstrap.table, jdbc),
    }
    body = ",\n  ".join(columns)
    table = snapshot_table(source)
    return f"CREATE TEMPORARY TABLE `{table}` (\n  {body}\n) WITH (\n  {options_sql(options)}\n)"
