"""Warehouse objects of a pipeline: the physical table of each version and the alias
view that serves one of them. Every identifier goes through SQLAlchemy's quoting."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    Date,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    inspect,
    text,
)
from sqlalchemy import Column as SqlColumn
from sqlalchemy.dialects.postgresql import DOUBLE_PRECISION, TIMESTAMP
from sqlalchemy.types import TypeEngine

from kappa_orch.registry import store as registry
from kappa_orch.spec.model import LoadedPipeline, PipelineSpec

_DECIMAL = re.compile(r"^DECIMAL\((\d+), (\d+)\)$")


def sql_type(flink_type: str) -> TypeEngine[Any]:
    simple: dict[str, TypeEngine[Any]] = {
        "STRING": Text(),
        "BOOLEAN": Boolean(),
        "INT": Integer(),
        "BIGINT": BigInteger(),
        "DOUBLE": DOUBLE_PRECISION(),
        "DATE": Date(),
        "TIMESTAMP(3)": TIMESTAMP(precision=3),
    }
    if flink_type in simple:
        return simple[flink_type]
    match = _DECIMAL.match(flink_type)
    if match is None:
        raise ValueError(f"no warehouse type for Flink type {flink_type!r}")
    return Numeric(int(match.group(1)), int(match.group(2)))


def version_table(spec: PipelineSpec, physical_table: str) -> Table:
    target = spec.target
    columns = [
        SqlColumn(c.name, sql_type(c.type), nullable=c.name not in target.primary_key) for c in target.columns
    ]
    return Table(
        physical_table,
        MetaData(schema=target.schema_name),
        *columns,
        PrimaryKeyConstraint(*target.primary_key, name=f"{physical_table}_pkey"),
    )


def create_version_table(conn: Connection, spec: PipelineSpec, physical_table: str) -> None:
    """Create the version's table (and its schema) unless it exists."""
    schema = spec.target.schema_name
    conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {_quote(conn, schema)}"))
    version_table(spec, physical_table).create(conn, checkfirst=True)


def drop_version_table(conn: Connection, spec: PipelineSpec, physical_table: str) -> None:
    version_table(spec, physical_table).drop(conn, checkfirst=True)


REGISTRY_ALIASES = "kappa_registry.aliases"  # registry.aliases; its live_version is the pointer
MEMBER_COLUMN = "kappa__member_version"  # the version number of each member's rows, inside the view


def build_alias(
    conn: Connection,
    spec: PipelineSpec,
    members: list[str],
    columns: list[str] | None = None,
    *,
    lock_timeout_ms: int | None = None,
) -> None:
    """(Re)create the alias view over its member version tables, inside the caller's
    transaction: a UNION ALL of the members, each tagged with its version number, of
    which the view keeps the registry's live version of the pipeline
    (`kappa_registry.aliases.live_version`).

    PostgreSQL evaluates the live version once per query (a one-time filter per member:
    the others are not scanned), in the query's snapshot, so a reader sees exactly one
    version. Moving the alias between members is then an update of the registry row:
    no DDL, no lock on the view, no reader waits. The view itself changes only when its
    members do (a version joins when it passes its gate, leaves when it is retired) or
    when the columns change.

    `members`: physical tables whose names end in `__v<N>` (with one member, the live
    version, the view is a plain SELECT); `columns`: the members' own columns (from their
    recorded definition; all members have the same). `lock_timeout_ms`: how long to wait
    for the view's lock (0: no limit), for this transaction (see
    `swap.with_short_locks`).
    """
    target = spec.target
    schema = _quote(conn, target.schema_name)
    names = columns if columns is not None else [c.name for c in target.columns]
    selected = ", ".join(_quote(conn, name) for name in names)
    pipeline = spec.name.replace("'", "''")
    pointer = f"(SELECT live_version FROM {REGISTRY_ALIASES} WHERE pipeline = '{pipeline}')"
    tables = sorted(set(members), key=version_number)
    if len(tables) == 1:
        # one member (the live version, as after a retire): a plain view, no guard
        body = f"SELECT {selected} FROM {schema}.{_quote(conn, tables[0])}"
    else:
        # the guard on top of an unfiltered UNION ALL, so that PostgreSQL flattens it into
        # one Append whose members are gated by a one-time filter each (filtered branches
        # are not flattened and cost full scans about twice as much)
        branches = "\nUNION ALL\n".join(
            f"SELECT {version_number(t)} AS {MEMBER_COLUMN}, {selected} FROM {schema}.{_quote(conn, t)}"
            for t in tables
        )
        body = f"SELECT {selected} FROM (\n{branches}\n) AS members WHERE {MEMBER_COLUMN} = {pointer}"
    alias = f"{schema}.{_quote(conn, target.table_name)}"
    if lock_timeout_ms is not None:
        conn.execute(text(f"SET LOCAL lock_timeout = '{int(lock_timeout_ms)}ms'"))
    conn.execute(text(f"DROP VIEW IF EXISTS {alias}"))
    conn.execute(text(f"CREATE VIEW {alias} AS\n{body}"))


def existing_tables(conn: Connection, schemas: set[str]) -> set[tuple[str, str]]:
    """(schema, table) of every table in these schemas (to find version tables dropped by hand)."""
    if not schemas:
        return set()
    rows = conn.execute(
        text(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_schema = ANY(:schemas)"
        ),
        {"schemas": sorted(schemas)},
    )
    return {(str(schema), str(table)) for schema, table in rows}


def version_number(physical_table: str) -> int:
    match = re.search(r"__v(\d+)$", physical_table)
    if match is None:
        raise ValueError(f"{physical_table!r} is not a version table (name__v<N>)")
    return int(match.group(1))


def alias_members(conn: Connection, spec: PipelineSpec) -> tuple[list[str], list[str]] | None:
    """The version tables the alias view reads and its columns, or None without a view."""
    target = spec.target
    if target.table_name not in inspect(conn).get_view_names(schema=target.schema_name):
        return None
    tables = conn.execute(
        text(
            "SELECT DISTINCT table_name FROM information_schema.view_table_usage "
            "WHERE view_schema = :schema AND view_name = :view AND table_schema = :schema"
        ),
        {"schema": target.schema_name, "view": target.table_name},
    ).scalars()
    columns = conn.execute(
        text(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = :schema AND table_name = :view ORDER BY ordinal_position"
        ),
        {"schema": target.schema_name, "view": target.table_name},
    ).scalars()
    return sorted(str(t) for t in tables), [str(c) for c in columns]


def _quote(conn: Connection, identifier: str) -> str:
    return str(conn.dialect.identifier_preparer.quote_identifier(identifier))


def missing_aliases(
    conn: Connection, pipelines: Sequence[LoadedPipeline], live: dict[str, int]
) -> frozenset[str]:
    """Pipelines with a live version whose alias view is gone (dropped by hand?)."""
    from sqlalchemy import inspect

    views: dict[str, set[str]] = {}
    missing = set()
    for p in pipelines:
        if p.name not in live:
            continue
        schema = p.spec.target.schema_name
        if schema not in views:
            views[schema] = set(inspect(conn).get_view_names(schema=schema))
        if p.spec.target.table_name not in views[schema]:
            missing.add(p.name)
    return frozenset(missing)


def missing_version_tables(
    conn: Connection, pipelines: Sequence[LoadedPipeline], rows: Sequence[registry.VersionRow]
) -> frozenset[tuple[str, int]]:
    """(pipeline, version) of live and ready versions whose table is gone."""
    schemas = {p.name: p.spec.target.schema_name for p in pipelines}
    present = existing_tables(conn, set(schemas.values()))
    return frozenset(
        (r.pipeline, r.version)
        for r in rows
        if r.pipeline in schemas
        and r.state in (registry.LIVE, registry.READY)
        and (schemas[r.pipeline], r.physical_table) not in present
    )
