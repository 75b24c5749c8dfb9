"""What each alert's receivers were last told (kappa_registry.alerts): a check's failure is
sent once, its resolve once, and a receiver that missed either is told again."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert

from kappa_orch.registry.schema import alerts


@dataclass(frozen=True)
class AlertState:
    dedup_key: str
    pipeline: str
    check: str
    firing: bool
    summary: str
    undelivered: list[str] = field(default_factory=list)


def read(conn: Connection, dedup_key: str) -> AlertState | None:
    row = conn.execute(select(alerts).where(alerts.c.dedup_key == dedup_key)).mappings().first()
    return None if row is None else _state(row)


def read_all(conn: Connection, dedup_keys: Sequence[str]) -> dict[str, AlertState]:
    """The states of many keys in one query (those never told are left out)."""
    rows = conn.execute(select(alerts).where(alerts.c.dedup_key.in_(list(dedup_keys)))).mappings()
    return {row["dedup_key"]: _state(row) for row in rows}


def _state(row: Any) -> AlertState:
    return AlertState(
        row["dedup_key"],
        row["pipeline"],
        row["check_name"],
        row["firing"],
        row["summary"],
        row["undelivered"],
    )


def save(conn: Connection, state: AlertState) -> None:
    values = {
        "dedup_key": state.dedup_key,
        "pipeline": state.pipeline,
        "check_name": state.check,
        "firing": state.firing,
        "summary": state.summary,
        "undelivered": sorted(state.undelivered),
    }
    statement = insert(alerts).values(**values)
    update = {k: statement.excluded[k] for k in values if k != "dedup_key"}
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["dedup_key"], set_={**update, "changed_at": func.now()}
        )
    )
