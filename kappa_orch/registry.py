"""The registry: versions, their states and jobs, and the serving aliases, kept in the
warehouse in a schema of its own. It is the source of truth that makes every step
resumable; its tables are created and migrated automatically."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Date,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    select,
    text,
    update,
)

from kappa_orch.errors import KappaError
from kappa_orch.spec.model import COUNTS_SCHEMA as JOB_COUNTS_SCHEMA
from kappa_orch.spec.model import REGISTRY_SCHEMA

SCHEMA = REGISTRY_SCHEMA
COUNTS_SCHEMA = JOB_COUNTS_SCHEMA


class VersionState(StrEnum):
    """A version's state, in the order a healthy version passes through them."""

    DEPLOYING = "deploying"  # its table is made and its job submitted
    CATCHING_UP = "catching_up"  # its job replays the log
    CHECKING = "checking"  # the gate runs its checks
    READY = "ready"  # gated; may go live (or, replaced, serves a rollback until retired)
    LIVE = "live"  # the alias serves it
    FAILED = "failed"  # failed its checks or its deploy; kept for inspection
    RETIRED = "retired"  # job stopped, table dropped


DEPLOYING = VersionState.DEPLOYING
CATCHING_UP = VersionState.CATCHING_UP
CHECKING = VersionState.CHECKING
READY = VersionState.READY
LIVE = VersionState.LIVE
FAILED = VersionState.FAILED
RETIRED = VersionState.RETIRED
RUNNING_STATES = frozenset({DEPLOYING, CATCHING_UP, CHECKING, READY, LIVE})

# every move a version may make (staying where it is is always allowed: steps are idempotent)
TRANSITIONS: dict[VersionState, frozenset[VersionState]] = {
    # a deploy's job runs (catching up) or fails to start; a candidate may be retired at any time
    DEPLOYING: frozenset({CATCHING_UP, FAILED, RETIRED}),
    # caught up, it is checked; a lost job is redeployed; a superseded one is abandoned
    CATCHING_UP: frozenset({CHECKING, DEPLOYING, FAILED, RETIRED}),
    # the gate lets it through (ready) or not (failed); a lost job is redeployed
    CHECKING: frozenset({READY, FAILED, CATCHING_UP, DEPLOYING, RETIRED}),
    # a swap makes it live; a ready version whose table is gone fails; replaced ones retire
    READY: frozenset({LIVE, FAILED, RETIRED}),
    # only another swap moves the live version: it stays ready for a rollback
    LIVE: frozenset({READY}),
    # a failed candidate is checked again (accepting a failure) or redeployed, or retired
    FAILED: frozenset({CATCHING_UP, DEPLOYING, RETIRED}),
    # retired is final: a retired fingerprint comes back as a new version
    RETIRED: frozenset(),
}


class IllegalTransition(KappaError):
    """A step tried to move a version where the state machine does not allow."""

    def __init__(self, pipeline: str, version: int, before: str, after: str) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[VersionState(before)])) or "nowhere (final)"
        super().__init__(
            f"{pipeline} v{version} cannot go from {before} to {after} (from {before} it may go to: "
            f"{allowed})",
            "this is a bug or a concurrent change: run `kappa-orch status` and `kappa-orch plan` and "
            "report the sequence of commands",
        )


def check_transition(pipeline: str, version: int, before: str, after: str) -> None:
    """Raise IllegalTransition unless `before` -> `after` is allowed (pure)."""
    if before != after and VersionState(after) not in TRANSITIONS[VersionState(before)]:
        raise IllegalTransition(pipeline, version, before, after)


metadata = MetaData(schema=SCHEMA)

migrations_table = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

versions = Table(
    "versions",
    metadata,
    Column("pipeline", String(63), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("physical_table", String(127), nullable=False),
    Column("state", String(16), nullable=False),
    Column("flink_job_id", String(64)),
    Column("group_id", String(127), nullable=False),
    Column("deployed_offsets", JSON),
    Column("error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("check_results", JSON),  # migration 2
    Column("replaced_at", DateTime(timezone=True)),  # migration 2: when the alias moved away from it
    Column("late_records", JSON),  # migration 6: {operator: records dropped as late} at the gate
    # migration 7: the version's own definition (target columns and key, SQL, spec text),
    # so a swap, a rollback or a roll-forward builds the alias from the version itself
    Column("definition", JSON),
    UniqueConstraint("pipeline", "fingerprint", name="versions_pipeline_fingerprint_key"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("pipeline", String(63), primary_key=True),
    Column("alias", String(127), nullable=False, unique=True),
    Column("live_version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


swaps = Table(
    "swaps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pipeline", String(63), nullable=False),
    Column("alias", String(127), nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("run_id", String(64)),
    Column("git_commit", String(64)),
    Column("swapped_by", String(127)),
    Column("swapped_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # migration 9: failed checks an operator accepted for the target: {check: "who: why"}
    Column("accepted", JSON),
)

claims = Table(
    "claims",
    metadata,
    # a pipeline's name, or "repair:<name>" for its repair (migration 8 widened it)
    Column("pipeline", String(127), primary_key=True),
    Column("owner", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


batch_days = Table(
    "batch_days",
    metadata,
    Column("pipeline", String(63), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("rows", Integer, nullable=False),
    Column("read_until", JSON, nullable=False),  # {topic: {partition: end offset when the day was computed}}
    Column("materialized_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("check_failed_at", DateTime(timezone=True)),  # migration 5: a scheduled check failed on it
    Column("check_failure", Text),  # migration 5
)


# written by each version's Flink job (JDBC upsert), one row per source partition; in a
# schema of its own, so that the registry is written by the orchestrator's role only
input_counts = Table(
    "input_counts",
    metadata,
    Column("pipeline", String(63), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("source_topic", String(255), primary_key=True),
    Column("kafka_partition", Integer, primary_key=True),
    Column("records", BigInteger, nullable=False),
    Column("parsed", BigInteger, nullable=False),
    Column("dead_lettered", BigInteger, nullable=False),
    Column("first_offset", BigInteger, nullable=False),
    Column("last_offset", BigInteger, nullable=False),
    schema=COUNTS_SCHEMA,
)
INPUT_COUNTS_TABLE = f"{COUNTS_SCHEMA}.input_counts"


def _migration_1(conn: Connection) -> None:
    # on a new warehouse this creates today's `versions`; the ADD COLUMN IF NOT EXISTS of
    # later migrations upgrade one created by an older kappa_orch
    metadata.create_all(conn, tables=[versions, aliases])


def _migration_2(conn: Connection) -> None:
    metadata.create_all(conn, tables=[swaps, claims])
    conn.execute(text(f'ALTER TABLE "{SCHEMA}".versions ADD COLUMN IF NOT EXISTS check_results JSON'))
    conn.execute(
        text(f'ALTER TABLE "{SCHEMA}".versions ADD COLUMN IF NOT EXISTS replaced_at TIMESTAMP WITH TIME ZONE')
    )


def _migration_3(conn: Connection) -> None:
    metadata.create_all(conn, tables=[batch_days])


def _migration_4(conn: Connection) -> None:
    conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{COUNTS_SCHEMA}"'))
    metadata.create_all(conn, tables=[input_counts])


def _migration_5(conn: Connection) -> None:
    for column, kind in (("check_failed_at", "TIMESTAMP WITH TIME ZONE"), ("check_failure", "TEXT")):
        conn.execute(text(f'ALTER TABLE "{SCHEMA}".batch_days ADD COLUMN IF NOT EXISTS {column} {kind}'))


def _migration_6(conn: Connection) -> None:
    conn.execute(text(f'ALTER TABLE "{SCHEMA}".versions ADD COLUMN IF NOT EXISTS late_records JSON'))


def _migration_7(conn: Connection) -> None:
    conn.execute(text(f'ALTER TABLE "{SCHEMA}".versions ADD COLUMN IF NOT EXISTS definition JSON'))


def _migration_8(conn: Connection) -> None:
    conn.execute(text(f'ALTER TABLE "{SCHEMA}".claims ALTER COLUMN pipeline TYPE VARCHAR(127)'))


def _migration_9(conn: Connection) -> None:
    conn.execute(text(f'ALTER TABLE "{SCHEMA}".swaps ADD COLUMN IF NOT EXISTS accepted JSON'))


def _migration_10(conn: Connection) -> None:
    # the counts leave the registry: Flink's sinks write them, and the registry is
    # written by the orchestrator's role only
    conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{COUNTS_SCHEMA}"'))
    if conn.execute(text(f"SELECT to_regclass('{SCHEMA}.input_counts')")).scalar() is not None:
        conn.execute(text(f'ALTER TABLE "{SCHEMA}".input_counts SET SCHEMA "{COUNTS_SCHEMA}"'))
    metadata.create_all(conn, tables=[input_counts])


# append only: each entry runs once per warehouse, in order
MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _migration_1),
    (2, _migration_2),
    (3, _migration_3),
    (4, _migration_4),
    (5, _migration_5),
    (6, _migration_6),
    (7, _migration_7),
    (8, _migration_8),
    (9, _migration_9),
    (10, _migration_10),
]


def lock(conn: Connection, name: str) -> None:
    """A transaction-scoped advisory lock: one writer per name at a time."""
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


# the registries this process migrated (their URLs, without password): see
# WarehouseResource.registry(), through which every step reads and writes the registry
MIGRATED: set[str] = set()


def migrate(conn: Connection) -> int:
    """Create or upgrade the registry (idempotent, safe to race); return its schema version.

    Every deploy, sensor tick and CLI call begins here: an up-to-date registry is seen
    with two reads, without the lock and the DDL.
    """
    latest = max(number for number, _ in MIGRATIONS)
    exists = conn.execute(text(f"SELECT to_regclass('{SCHEMA}.schema_migrations')")).scalar() is not None
    if exists and conn.execute(select(func.max(migrations_table.c.version))).scalar() == latest:
        return latest
    lock(conn, "kappa_registry.migrate")
    conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"'))
    metadata.create_all(conn, tables=[migrations_table])
    applied = set(conn.execute(select(migrations_table.c.version)).scalars())
    for number, step in MIGRATIONS:
        if number not in applied:
            step(conn)
            conn.execute(insert(migrations_table).values(version=number))
    return latest


@dataclass(frozen=True)
class VersionRow:
    pipeline: str
    version: int
    fingerprint: str
    physical_table: str
    state: VersionState
    flink_job_id: str | None
    group_id: str
    deployed_offsets: dict[str, Any] | None
    error: str | None
    created_at: datetime | None = None
    check_results: dict[str, Any] | None = None
    replaced_at: datetime | None = None
    late_records: dict[str, int] | None = None
    definition: dict[str, Any] | None = None

    @property
    def columns(self) -> list[str] | None:
        """The version's target column names, when its definition was recorded."""
        if not self.definition:
            return None
        return [name for name, _type in self.definition["columns"]]


def _row(mapping: Any) -> VersionRow:
    return VersionRow(
        pipeline=mapping["pipeline"],
        version=mapping["version"],
        fingerprint=mapping["fingerprint"],
        physical_table=mapping["physical_table"],
        state=VersionState(mapping["state"]),
        flink_job_id=mapping["flink_job_id"],
        group_id=mapping["group_id"],
        deployed_offsets=mapping["deployed_offsets"],
        error=mapping["error"],
        created_at=mapping["created_at"],
        check_results=mapping.get("check_results"),
        replaced_at=mapping.get("replaced_at"),
        late_records=mapping.get("late_records"),
        definition=mapping.get("definition"),
    )


def pipeline_versions(conn: Connection, pipeline: str) -> list[VersionRow]:
    rows = conn.execute(select(versions).where(versions.c.pipeline == pipeline).order_by(versions.c.version))
    return [_row(r._mapping) for r in rows]


def all_versions(conn: Connection) -> list[VersionRow]:
    rows = conn.execute(select(versions).order_by(versions.c.pipeline, versions.c.version))
    return [_row(r._mapping) for r in rows]


def live_versions(conn: Connection) -> dict[str, int]:
    return {r.pipeline: r.live_version for r in conn.execute(select(aliases))}


def add_version(
    conn: Connection,
    *,
    pipeline: str,
    version: int,
    fingerprint: str,
    physical_table: str,
    group_id: str,
    definition: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        insert(versions).values(
            pipeline=pipeline,
            version=version,
            fingerprint=fingerprint,
            physical_table=physical_table,
            state=DEPLOYING,
            group_id=group_id,
            definition=definition,
        )
    )


def set_version(conn: Connection, pipeline: str, version: int, **values: Any) -> None:
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


def set_live(conn: Connection, *, pipeline: str, alias: str, version: int) -> int | None:
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
            set_version(conn, pipeline, previous, state=READY, replaced_at=func.now())
    set_version(conn, pipeline, version, state=LIVE, replaced_at=None)
    return previous


def record_swap(
    conn: Connection,
    *,
    pipeline: str,
    alias: str,
    from_version: int | None,
    to_version: int,
    fingerprint: str,
    reason: str,
    run_id: str | None,
    git_commit: str | None,
    swapped_by: str | None,
    accepted: dict[str, str] | None = None,
) -> None:
    conn.execute(
        insert(swaps).values(
            accepted=accepted or None,
            pipeline=pipeline,
            alias=alias,
            from_version=from_version,
            to_version=to_version,
            fingerprint=fingerprint,
            reason=reason,
            run_id=run_id,
            git_commit=git_commit,
            swapped_by=swapped_by,
        )
    )


def swap_history(conn: Connection, pipeline: str) -> list[dict[str, Any]]:
    rows = conn.execute(select(swaps).where(swaps.c.pipeline == pipeline).order_by(swaps.c.id))
    return [dict(r._mapping) for r in rows]


def record_batch_days(
    conn: Connection, *, pipeline: str, rows_per_day: dict[Any, int], read_until: dict[str, dict[str, int]]
) -> None:
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    for day, rows in rows_per_day.items():
        statement = pg_insert(batch_days).values(pipeline=pipeline, day=day, rows=rows, read_until=read_until)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=[batch_days.c.pipeline, batch_days.c.day],
                set_={
                    "rows": rows,
                    "read_until": read_until,
                    "materialized_at": func.now(),
                    "check_failed_at": None,
                    "check_failure": None,
                },
            )
        )


def batch_day_reads(conn: Connection, pipeline: str) -> dict[Any, dict[str, dict[str, int]]]:
    """day -> the offsets its last computation read up to."""
    rows = conn.execute(
        select(batch_days.c.day, batch_days.c.read_until).where(batch_days.c.pipeline == pipeline)
    )
    return {day: read_until for day, read_until in rows}


def mark_failed_days(conn: Connection, *, pipeline: str, days: list[Any], failure: str) -> list[Any]:
    """Record a failed check on computed days; returns the days that were computed."""
    rows = conn.execute(
        update(batch_days)
        .where(batch_days.c.pipeline == pipeline, batch_days.c.day.in_(days))
        .values(check_failed_at=func.now(), check_failure=failure[:4000])
        .returning(batch_days.c.day)
    )
    return sorted(rows.scalars())


def failed_batch_days(conn: Connection, pipeline: str) -> dict[Any, datetime]:
    """day -> when a check failed on it, for days not recomputed since."""
    rows = conn.execute(
        select(batch_days.c.day, batch_days.c.check_failed_at).where(
            batch_days.c.pipeline == pipeline, batch_days.c.check_failed_at.is_not(None)
        )
    )
    return {day: failed_at for day, failed_at in rows}


@dataclass(frozen=True)
class InputCount:
    source_topic: str
    kafka_partition: int
    records: int
    parsed: int
    dead_lettered: int
    first_offset: int
    last_offset: int


def input_counts_of(conn: Connection, pipeline: str, version: int) -> list[InputCount]:
    """What a version's job has read, per source partition (written by the job itself)."""
    rows = conn.execute(
        select(input_counts)
        .where(input_counts.c.pipeline == pipeline, input_counts.c.version == version)
        .order_by(input_counts.c.source_topic, input_counts.c.kafka_partition)
    )
    return [
        InputCount(
            r.source_topic,
            r.kafka_partition,
            r.records,
            r.parsed,
            r.dead_lettered,
            r.first_offset,
            r.last_offset,
        )
        for r in rows
    ]


def input_totals(conn: Connection) -> dict[tuple[str, int], tuple[int, int]]:
    """(pipeline, version) -> (records read, dead-lettered), summed over partitions, in one query."""
    rows = conn.execute(
        select(
            input_counts.c.pipeline,
            input_counts.c.version,
            func.sum(input_counts.c.records),
            func.sum(input_counts.c.dead_lettered),
        ).group_by(input_counts.c.pipeline, input_counts.c.version)
    )
    return {(p, v): (int(records), int(dead)) for p, v, records, dead in rows}
