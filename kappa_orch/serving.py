"""Warehouse objects of a pipeline: the physical table of each version and the alias
view that serves one of them. Every identifier goes through SQLAlchemy's quoting."""

from __future__ import annotations

import re
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

from kappa_orch.spec.model import PipelineSpec

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


def point_alias(
    conn: Connection, spec: PipelineSpec, physical_table: str, columns: list[str] | None = None
) -> None:
    """(Re)create the alias view over one version, inside the caller's transaction.

    `columns`: the version's own columns (from its recorded definition), which differ
    from the current spec's when rolling back or forward across a column change.
    PostgreSQL DDL is transactional: readers see the old view or the new one.
    """
    target = spec.target
    schema = _quote(conn, target.schema_name)
    names = columns if columns is not None else [c.name for c in target.columns]
    selected = ", ".join(_quote(conn, name) for name in names)
    alias = f"{schema}.{_quote(conn, target.table_name)}"
    conn.execute(text(f"DROP VIEW IF EXISTS {alias}"))
    conn.execute(
        text(f"CREATE VIEW {alias} AS SELECT {selected} FROM {schema}.{_quote(conn, physical_table)}")
    )


def alias_target(conn: Connection, spec: PipelineSpec) -> str | None:
    """The physical table the alias view reads, or None when there is no alias yet."""
    target = spec.target
    if target.table_name not in inspect(conn).get_view_names(schema=target.schema_name):
        return None
    row = conn.execute(
        text(
            "SELECT DISTINCT table_name FROM information_schema.view_table_usage "
            "WHERE view_schema = :schema AND view_name = :view"
        ),
        {"schema": target.schema_name, "view": target.table_name},
    ).first()
    return None if row is None else str(row[0])


def _quote(conn: Connection, identifier: str) -> str:
    return str(conn.dialect.identifier_preparer.quote_identifier(identifier))
