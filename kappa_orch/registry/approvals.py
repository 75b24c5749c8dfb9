"""Changes that wait for a person before their new version starts (issue 26, point 7).

A reprocess whose change needs approval (the spec's `approval` settings) records a request
under its plan id and stops; `kappa-orch plan --apply --approve <plan-id>` (or the run's
`approve` config) approves exactly that id, which binds the live and the candidate's
compiled plans: a later, other change has another id and waits again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from kappa_orch.registry.schema import approvals


@dataclass(frozen=True)
class Request:
    pipeline: str
    plan_id: str
    fingerprint: str
    kind: str
    reasons: list[str]
    cost: dict[str, Any]
    requested_at: datetime | None = None
    approved_by: str | None = None
    approved_at: datetime | None = None


def request(conn: Connection, asked: Request) -> None:
    """Record that the change waits (once per plan id; asked again, it stays as it was)."""
    known = conn.execute(
        select(approvals.c.plan_id).where(
            approvals.c.pipeline == asked.pipeline, approvals.c.plan_id == asked.plan_id
        )
    ).first()
    if known is None:
        conn.execute(
            insert(approvals).values(
                pipeline=asked.pipeline,
                plan_id=asked.plan_id,
                fingerprint=asked.fingerprint,
                kind=asked.kind,
                reasons=asked.reasons,
                cost=asked.cost,
            )
        )


def approve(conn: Connection, plan_id: str, by: str) -> Request | None:
    """Approve the change waiting under `plan_id`; the request, or None when none waits."""
    found = requests(conn, plan_id=plan_id)
    if not found:
        return None
    conn.execute(
        update(approvals)
        .where(approvals.c.plan_id == plan_id, approvals.c.approved_at.is_(None))
        .values(approved_by=by, approved_at=func.now())
    )
    return requests(conn, plan_id=plan_id)[0]


def requests(conn: Connection, *, plan_id: str | None = None, pipeline: str | None = None) -> list[Request]:
    """Requests, newest first (all, one plan id's, or one pipeline's)."""
    query = select(approvals).order_by(approvals.c.requested_at.desc())
    if plan_id is not None:
        query = query.where(approvals.c.plan_id == plan_id)
    if pipeline is not None:
        query = query.where(approvals.c.pipeline == pipeline)
    return [
        Request(
            r.pipeline,
            r.plan_id,
            r.fingerprint,
            r.kind,
            list(r.reasons),
            dict(r.cost),
            r.requested_at,
            r.approved_by,
            r.approved_at,
        )
        for r in conn.execute(query)
    ]


def waiting(conn: Connection) -> dict[tuple[str, str], str]:
    """(pipeline, fingerprint) -> the plan id of a change that waits for approval."""
    rows = conn.execute(select(approvals).where(approvals.c.approved_at.is_(None)))
    return {(r.pipeline, r.fingerprint): r.plan_id for r in rows}
