"""The Flink SQL of a version's sources: each event read as raw bytes with its partition
and offset, its declared columns computed with JSON_VALUE/TRY_CAST, and the reason an
invalid event is dead-lettered instead (see flink_sql for the whole job)."""

from __future__ import annotations

from collections.abc import Mapping

from kappa_orch.spec.model import Column, Source, parse_duration


def jdbc_table(table: str, jdbc: Mapping[str, str]) -> dict[str, str]:
    """The JDBC connector options of one warehouse table (source or sink): a job role's
    URL names its role and the plugin that derives its password (no password option)."""
    options = {"connector": "jdbc", "url": jdbc["url"], "table-name": table}
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
NOT_UTF8 = "payload is not valid UTF-8"


def _json_value(column: str) -> str:
    return f"JSON_VALUE({PAYLOAD_TEXT}, '$.{column}')"


def _column_expression(column: Column) -> str:
    value = _json_value(column.name)
    return value if column.type == "STRING" else f"TRY_CAST({value} AS {column.type})"


def _is_integertext_literal(column: Column) -> str:
    # a CAST alone would truncate 1.5 to 1: integers must be written as integers
    return f"REGEXP({_json_value(column.name)}, '^-?[0-9]+$')"


def _utf8() -> str:
    return f"CAST({PAYLOAD_TEXT} AS BYTES) = `payload_bytes`"


def interval(duration: str) -> str:
    """A duration as a Flink interval literal (`INTERVAL '7200' SECOND` would overflow
    SECOND's default precision of 2 digits: written as days to milliseconds instead)."""
    total_ms = round(parse_duration(duration) * 1000)
    seconds, ms = divmod(total_ms, 1000)
    minutes, sec = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    days, hour = divmod(hours, 24)
    return f"INTERVAL '{days} {hour:02d}:{minute:02d}:{sec:02d}.{ms:03d}' DAY(3) TO SECOND(3)"


def _event_millis(source: Source) -> str:
    assert source.event_time is not None
    return f"TRY_CAST({_json_value(source.event_time.from_column)} AS BIGINT)"


def _plausible(source: Source) -> str | None:
    """The event time is not further ahead of the record's log time than `max_ahead`
    (TO_TIMESTAMP_LTZ is NULL for an absurd number: implausible too)."""
    event_time = source.event_time
    if event_time is None or event_time.max_ahead is None:
        return None
    event = f"TO_TIMESTAMP_LTZ({_event_millis(source)}, 3)"
    limit = f"`kafka_timestamp` + {interval(event_time.max_ahead)}"
    return f"(`kafka_timestamp` IS NULL OR COALESCE({event} <= {limit}, FALSE))"


def _has_nul(value: str) -> str:
    # a regex escape, not a NUL literal: a CHR(0) constant is lost in Flink's generated code
    return f"REGEXP({value}, '\\u0000')"


def _valid(source: Source, columns: dict[str, str]) -> str:
    """The condition of a valid event over the raw table's columns (named by `columns`):
    every declared column present, scalar, of its type, text without NUL (PostgreSQL
    refuses it), a UTF-8 payload, and a plausible event time."""
    parts = [f"{columns[c.name]} IS NOT NULL" for c in source.columns]
    parts += [_is_integertext_literal(c) for c in source.columns if c.type in {"INT", "BIGINT"}]
    parts += [f"NOT {_has_nul(columns[c.name])}" for c in source.columns if c.type == "STRING"]
    parts.append(_utf8())
    plausible = _plausible(source)
    if plausible:
        parts.append(plausible)
    return " AND ".join(parts)


def source_ddl(
    source: Source,
    *,
    bootstrap: str,
    group_id: str,
    startup_mode: str,
    extra_options: Mapping[str, str] | None = None,
) -> str:
    """The raw table: the payload's bytes, partition, offset and log time, the declared
    columns computed from the payload, and the event time with its watermark.

    The watermark expression is NULL for every event that is not valid (it will be
    dead-lettered) and for implausible event times, and Flink's watermark generator
    skips NULLs: only valid events move event time. The watermark is pushed into the
    Kafka source, which tracks it per partition and emits the minimum over partitions,
    so a partition read ahead during a replay makes no other partition's events late."""
    columns = [
        "`payload_bytes` BYTES",
        "`kafka_partition` INT METADATA FROM 'partition' VIRTUAL",
        "`kafka_offset` BIGINT METADATA FROM 'offset' VIRTUAL",
        "`kafka_timestamp` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL",
        f"`payload` AS {PAYLOAD_TEXT}",
    ]
    columns += [f"`{c.name}` AS {_column_expression(c)}" for c in source.columns]
    if source.event_time is not None:
        event_time = source.event_time
        columns.append(f"`{event_time.column}` AS TO_TIMESTAMP_LTZ({_event_millis(source)}, 3)")
        delay = interval(event_time.watermark_delay)
        # computed columns cannot read each other: the condition repeats their expressions
        valid = _valid(source, {c.name: _column_expression(c) for c in source.columns})
        columns.append(
            f"WATERMARK FOR `{event_time.column}` AS CASE WHEN {valid} "
            f"THEN `{event_time.column}` - {delay} END"
        )
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


def implausible_reason(source: Source) -> str | None:
    event_time = source.event_time
    if event_time is None or event_time.max_ahead is None:
        return None
    return (
        f"event time {event_time.from_column} is more than {event_time.max_ahead} ahead of "
        "the record's Kafka timestamp (event_time.max_ahead)"
    )


def rejection_reason(source: Source) -> str:
    """CASE expression: NULL for a valid event, else the first thing wrong with it.

    The first branch is the valid events' fast path, on the declared columns already
    computed (a JSON object's scalar fields, cast): the detailed branches, which parse
    the payload again, run only for broken events."""
    valid = _valid(source, {c.name: f"`{c.name}`" for c in source.columns})
    whens = [
        f"WHEN {valid} THEN CAST(NULL AS STRING)",
        f"WHEN `payload_bytes` IS NULL THEN {text_literal('empty payload (tombstone)')}",
        f"WHEN NOT ({_utf8()}) THEN {text_literal(NOT_UTF8)}",
        f"WHEN NOT (`payload` IS JSON OBJECT) THEN {text_literal('not a JSON object')}",
    ]
    for column in source.columns:
        path = f"'$.{column.name}'"
        # JSON_EXISTS is false for a missing field and for a null one
        whens.append(
            f"WHEN NOT JSON_EXISTS(`payload`, {path}) "
            f"THEN {text_literal(f'field {column.name} is missing or null')}"
        )
        whens.append(
            f"WHEN JSON_VALUE(`payload`, {path}) IS NULL "
            f"THEN {text_literal(f'field {column.name} is not a scalar (object or array)')}"
        )
        wrong_type = text_literal(f"field {column.name} is not {column.type}")
        if column.type in {"INT", "BIGINT"}:
            whens.append(f"WHEN NOT {_is_integertext_literal(column)} THEN {wrong_type}")
        if column.type != "STRING":
            whens.append(f"WHEN `{column.name}` IS NULL THEN {wrong_type}")
        else:
            nul = text_literal(f"field {column.name} contains a NUL character")
            whens.append(f"WHEN {_has_nul(f'`{column.name}`')} THEN {nul}")
    implausible = implausible_reason(source)
    plausible = _plausible(source)
    if implausible and plausible:
        whens.append(f"WHEN NOT {plausible} THEN {text_literal(implausible)}")
    # never NULL unless the fast path holds: the SQL and the dead letters split the input exactly
    whens.append(f"ELSE {text_literal('does not match the source schema')}")
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
    selected = ["r.`payload_bytes`", "r.`payload`", "r.`kafka_partition`", "r.`kafka_offset`"]
    selected += ["t.`kappa_reason`"] + [f"t.`kappa_v_{n}` AS `{n}`" for n in names]
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
        **jdbc_table(source.bootstrap.table, jdbc),
    }
    body = ",\n  ".join(columns)
    table = snapshot_table(source)
    return f"CREATE TEMPORARY TABLE `{table}` (\n  {body}\n) WITH (\n  {options_sql(options)}\n)"
