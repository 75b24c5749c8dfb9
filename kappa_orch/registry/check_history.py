"""The last outcome of each scheduled data-quality check, kept in the registry so that
`kappa-orch status` (which reads no Dagster instance) shows a failed scheduled check."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert

from kappa_orch.registry.schema import scheduled_checks


@dataclass(frozen=True)
class CheckOutcome:
    """A scheduled check's last outcome on one pipeline."""

    pipeline: str
    check_name: str
    passed: bool
    summary: str
    run_id: str | None
    checked_at: datetime | None = None  # set by the registry when it is recorded


def record_check(conn: Connection, outcome: CheckOutcome) -> None:
    """Keep this outcome as the check's last (one row per pipeline and check)."""
    values = {
        "passed": outcome.passed,
        "summary": outcome.summary[:4000],
        "run_id": outcome.run_id,
        "checked_at": func.now(),
    }
    key = {"pipeline": outcome.pipeline, "check_name": outcome.check_name}
    statement = insert(scheduled_checks).values(**key, **values)
    conn.execute(statement.on_conflict_do_update(index_elements=["pipeline", "check_name"], set_=values))


def last_checks(conn: Connection) -> dict[str, list[CheckOutcome]]:
    """Per pipeline, the last outcome of each of its scheduled checks (by check name)."""
    found: dict[str, list[CheckOutcome]] = {}
    c = scheduled_checks.c
    for r in conn.execute(select(scheduled_checks).order_by(c.pipeline, c.check_name)):
        outcome = CheckOutcome(r.pipeline, r.check_name, r.passed, r.summary, r.run_id, r.checked_at)
        found.setdefault(r.pipeline, []).append(outcome)
    return found
