"""Every change of a version's row, by name.

The lifecycle says what happened to a version (`mark_caught_up`, `mark_gated`,
`mark_failed`, ...), never which column to set. Each goes through the one writer,
`_write`, which locks the row, checks a change of state against the state machine
(`states.check_transition`) and updates it. A version's row is made by
`store.add_version` (in `deploying`); `record` writes what is not a move (a job's offsets,
an accepted log, an error while the version keeps serving).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from kappa_orch.errors import KappaError
from kappa_orch.registry.schema import aliases, versions
from kappa_orch.registry.states import (
    CATCHING_UP,
    CHECKING,
    DEPLOYING,
    FAILED,
    LIVE,
    READY,
    RETIRED,
    check_transition,
)

# the registry keeps this much of an error (the whole of it is in the run's log)
ERROR_CHARS = 4000


def _write(conn: Connection, pipeline: str, version: int, **values: Any) -> None:
    """Update a version's row; a change of `state` must be an allowed transition (the one
    place the state machine is enforced: the row is locked, its state read and checked)."""
    if "state" in values:
        before = conn.execute(
            select(versions.c.state)
            .where(versions.c.pipeline == pipeline, versions.c.version == version)
            .with_for_update()
        ).scalar()
        if before is None:
            raise KappaError(f"{pipeline} has no version {version} in the registry")
        check_transition(pipeline, version, before, values["state"])
    conn.execute(
        update(versions)
        .where(versions.c.pipeline == pipeline, versions.c.version == version)
        .values(updated_at=func.now(), **values)
    )


def record(conn: Connection, pipeline: str, version: int, **facts: Any) -> None:
    """Facts about a version that do not move it: its job cleared, a fingerprint set
    aside, accepted logs, an error while it keeps serving."""
    if "state" in facts:
        raise ValueError("a version's state is written by a named transition (mark_...)")
    if facts.get("error"):
        facts["error"] = facts["error"][:ERROR_CHARS]
    _write(conn, pipeline, version, **facts)


def mark_deploying(conn: Connection, pipeline: str, version: int) -> None:
    """Deployed again (after a failure, or a stopped job): its job is submitted anew."""
    _write(conn, pipeline, version, state=DEPLOYING, flink_job_id=None, error=None)


def mark_job_started(conn: Connection, pipeline: str, version: int, state: str, **job: Any) -> None:
    """Its job runs (`job`: its `flink_job_id`, and what it started from: offsets, topic
    ids): a new version catches up; a live or ready one whose job was replaced (repair, an
    adopted orphan) stays what it was."""
    if not job.get("flink_job_id"):
        raise ValueError("a started job has an id (flink_job_id)")
    _write(conn, pipeline, version, state=state, **job)


def mark_catching_up(conn: Connection, pipeline: str, version: int) -> None:
    _write(conn, pipeline, version, state=CATCHING_UP)


def mark_caught_up(conn: Connection, pipeline: str, version: int, *, definition: dict[str, Any]) -> None:
    """The job has replayed the log (and checkpointed): the version is checked next; its
    definition now holds the measured catch-up."""
    _write(conn, pipeline, version, state=CHECKING, definition=definition)


@dataclass(frozen=True)
class GateVerdict:
    """The gate's verdict on a version: each check's result, the late records it counted,
    and the checks that failed (empty: it passed)."""

    check_results: dict[str, Any]
    late_records: dict[str, int] | None
    failures: str | None


def mark_gated(conn: Connection, pipeline: str, version: int, verdict: GateVerdict) -> None:
    """Ready to serve, or failed with the checks that failed."""
    failures = verdict.failures
    error = f"checks failed: {failures}"[:ERROR_CHARS] if failures else None
    state = FAILED if failures else READY
    late = verdict.late_records
    _write(
        conn,
        pipeline,
        version,
        state=state,
        check_results=verdict.check_results,
        late_records=late,
        error=error,
    )


def mark_failed(conn: Connection, pipeline: str, version: int, error: str) -> None:
    _write(conn, pipeline, version, state=FAILED, error=error[:ERROR_CHARS])


def mark_retired(conn: Connection, pipeline: str, version: int, *, fingerprint_aside: str) -> None:
    """Its job stopped and its table dropped; its fingerprint set aside, so the spec set
    back to it deploys a new version."""
    _write(conn, pipeline, version, state=RETIRED, fingerprint=fingerprint_aside)


def mark_live(conn: Connection, *, pipeline: str, alias: str, version: int) -> int | None:
    """Record the alias's version; the previous live version becomes ready (retained for
    rollback until retired). Returns the previous live version."""
    previous: int | None = conn.execute(
        select(aliases.c.live_version).where(aliases.c.pipeline == pipeline)
    ).scalar()
    if previous is None:
        conn.execute(insert(aliases).values(pipeline=pipeline, alias=alias, live_version=version))
    else:
        conn.execute(
            update(aliases)
            .where(aliases.c.pipeline == pipeline)
            .values(alias=alias, live_version=version, updated_at=func.now())
        )
        if previous != version:
            _write(conn, pipeline, previous, state=READY, replaced_at=func.now())
    _write(conn, pipeline, version, state=LIVE, replaced_at=None)
    return previous


def restore_live(conn: Connection, pipeline: str, version: int) -> None:
    """The alias serves this version but its row lost the live state: it is live again."""
    _write(conn, pipeline, version, state=LIVE)
