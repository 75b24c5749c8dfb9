"""The registry: versions, their states and jobs, and the serving aliases, kept in the
warehouse in a schema of its own. It is the source of truth that makes every step
resumable; its tables are created and migrated automatically."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, or_, select, update

from kappa_orch.registry.schema import (
    aliases,
    batch_days,
    carried_counts,
    claims,
    input_counts,
    lock,
    lock_pipeline,
    migrate,
    session,
    swaps,
    version_plans,
    versions,
)
from kappa_orch.registry.states import (
    CATCHING_UP,
    CHECKING,
    DEPLOYING,
    FAILED,
    LIVE,
    READY,
    RETIRED,
    RUNNING_STATES,
    VersionState,
    check_transition,
)

# the registry's tables and states live in schema and states; callers read them here
__all__ = [
    "CATCHING_UP",
    "CHECKING",
    "DEPLOYING",
    "FAILED",
    "LIVE",
    "READY",
    "RETIRED",
    "RUNNING_STATES",
    "InputCount",
    "NewVersion",
    "SwapRecord",
    "VersionRow",
    "VersionState",
    "add_version",
    "aliases",
    "all_versions",
    "batch_day_reads",
    "batch_days",
    "check_transition",
    "claims",
    "failed_batch_days",
    "input_counts",
    "input_counts_of",
    "input_totals",
    "live_versions",
    "lock",
    "lock_pipeline",
    "mark_failed_days",
    "migrate",
    "pipeline_versions",
    "recent_swaps",
    "record_batch_days",
    "record_swap",
    "session",
    "swap_history",
    "swaps",
    "versions",
]


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
    # the newest completed checkpoint of its job that was observed (migration 12)
    checkpoint: dict[str, Any] | None = None
    # {source topic: Kafka topic id} when its job was deployed (migration 13)
    source_topic_ids: dict[str, str] | None = None
    # replaced logs a person accepted for it: [{at, by, reason, replaced: [{topic, was, now}]}]
    logs_accepted: list[dict[str, Any]] | None = None

    @property
    def spec_fingerprint(self) -> str:
        """The fingerprint of the spec it runs: a version whose log was replaced and is being
        replayed by a new version has its fingerprint set aside as `<fingerprint>~v<N>`."""
        return self.fingerprint.split("~", 1)[0]

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
        checkpoint=mapping.get("checkpoint"),
        source_topic_ids=mapping.get("source_topic_ids"),
        logs_accepted=mapping.get("logs_accepted"),
    )


@dataclass(frozen=True)
class StoredPlan:
    """The compiled plan a version's job was started from (the engine's canonical form)."""

    fingerprint: str  # what it computes (the same for two versions that compute the same)
    stateful: tuple[str, ...]  # the operator ids of its stateful nodes
    document: str  # the plan as the engine executes it


def save_plan(conn: Connection, pipeline: str, version: int, plan: StoredPlan) -> None:
    """Keep the plan a version's job was first started from (a redeploy reuses it)."""
    conn.execute(
        delete(version_plans).where(version_plans.c.pipeline == pipeline, version_plans.c.version == version)
    )
    conn.execute(
        insert(version_plans).values(
            pipeline=pipeline,
            version=version,
            fingerprint=plan.fingerprint,
            stateful=sorted(plan.stateful),
            document=plan.document,
        )
    )


def version_plan(conn: Connection, pipeline: str, version: int) -> StoredPlan | None:
    """The plan the version's job runs, or None (a version started before plans were kept,
    or on an engine that keeps none: its job is a statement set with automatic ids)."""
    row = conn.execute(
        select(version_plans).where(version_plans.c.pipeline == pipeline, version_plans.c.version == version)
    ).first()
    if row is None:
        return None
    return StoredPlan(row.fingerprint, tuple(row.stateful), row.document)


def pipeline_versions(conn: Connection, pipeline: str) -> list[VersionRow]:
    rows = conn.execute(select(versions).where(versions.c.pipeline == pipeline).order_by(versions.c.version))
    return [_row(r._mapping) for r in rows]


def all_versions(conn: Connection) -> list[VersionRow]:
    rows = conn.execute(select(versions).order_by(versions.c.pipeline, versions.c.version))
    return [_row(r._mapping) for r in rows]


def live_versions(conn: Connection) -> dict[str, int]:
    return {r.pipeline: r.live_version for r in conn.execute(select(aliases))}


@dataclass(frozen=True)
class NewVersion:
    """A version as its deploy first records it (in `deploying`): its table, its job's
    consumer group, and what the registry keeps of its spec (`definition`)."""

    pipeline: str
    version: int
    fingerprint: str
    physical_table: str
    group_id: str
    definition: dict[str, Any] | None = None


def add_version(conn: Connection, new: NewVersion) -> None:
    conn.execute(insert(versions).values(**asdict(new), state=DEPLOYING))


STOPPED_WITH_SAVEPOINT = "savepoint"  # the checkpoint id of the savepoint a job was stopped with


def record_checkpoint(
    conn: Connection, pipeline: str, version: int, job_id: str, checkpoint: dict[str, Any]
) -> bool:
    """Keep the newest completed checkpoint Flink reported for the version's current job
    (no state change; ignored when the version has another job by now, or when this job was
    stopped with a savepoint: that is where it resumes). True if recorded."""
    recorded_job = func.coalesce(versions.c.checkpoint["job_id"].as_string(), "")
    recorded_id = func.coalesce(versions.c.checkpoint["checkpoint_id"].as_string(), "")
    done = conn.execute(
        update(versions)
        .where(
            versions.c.pipeline == pipeline,
            versions.c.version == version,
            versions.c.flink_job_id == job_id,
            or_(recorded_job != job_id, recorded_id != STOPPED_WITH_SAVEPOINT),
        )
        .values(checkpoint={"job_id": job_id, **checkpoint})
    )
    return bool(done.rowcount)


@dataclass(frozen=True)
class SwapRecord:
    """One move of an alias, as the swaps table keeps it: from and to which version, the
    target's fingerprint, why, in which run, at which commit, by whom, and the failed
    checks that were accepted (name -> who and why)."""

    pipeline: str
    alias: str
    from_version: int | None
    to_version: int
    fingerprint: str
    reason: str
    run_id: str | None = None
    git_commit: str | None = None
    swapped_by: str | None = None
    accepted: dict[str, str] | None = None


def record_swap(conn: Connection, record: SwapRecord) -> None:
    conn.execute(insert(swaps).values(**{**asdict(record), "accepted": record.accepted or None}))


def swap_history(conn: Connection, pipeline: str) -> list[dict[str, Any]]:
    rows = conn.execute(select(swaps).where(swaps.c.pipeline == pipeline).order_by(swaps.c.id))
    return [dict(r._mapping) for r in rows]


def recent_swaps(conn: Connection, pipelines: list[str], limit: int) -> dict[str, list[dict[str, Any]]]:
    """The last `limit` swaps of each pipeline, newest first (one query)."""
    ranked = (
        select(
            swaps,
            func.row_number().over(partition_by=swaps.c.pipeline, order_by=swaps.c.id.desc()).label("n"),
        )
        .where(swaps.c.pipeline.in_(pipelines))
        .subquery()
    )
    found: dict[str, list[dict[str, Any]]] = {}
    for row in conn.execute(
        select(ranked).where(ranked.c.n <= limit).order_by(ranked.c.pipeline, ranked.c.id.desc())
    ):
        found.setdefault(row.pipeline, []).append({k: v for k, v in row._mapping.items() if k != "n"})
    return found


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
    late: int = 0  # of the dead-lettered, those that arrived behind the watermark


def input_counts_of(conn: Connection, pipeline: str, version: int) -> list[InputCount]:
    """What a version's job has read, per source partition (written by the job itself),
    with what it carried over from another version's savepoint (carried_counts)."""
    merged: dict[tuple[str, int], InputCount] = {}
    for table in (carried_counts, input_counts):
        rows = conn.execute(select(table).where(table.c.pipeline == pipeline, table.c.version == version))
        for r in rows:
            here = InputCount(
                r.source_topic, r.kafka_partition, r.records, r.parsed, r.dead_lettered,
                r.first_offset, r.last_offset, r.late,
            )  # fmt: skip
            before = merged.get((r.source_topic, r.kafka_partition))
            merged[(r.source_topic, r.kafka_partition)] = here if before is None else _added(before, here)
    return [merged[k] for k in sorted(merged)]


def _added(before: InputCount, after: InputCount) -> InputCount:
    """Counts carried to a fence, then counted from it: one span of offsets."""
    return InputCount(
        before.source_topic,
        before.kafka_partition,
        before.records + after.records,
        before.parsed + after.parsed,
        before.dead_lettered + after.dead_lettered,
        min(before.first_offset, after.first_offset),
        max(before.last_offset, after.last_offset),
        before.late + after.late,
    )


def input_totals(conn: Connection) -> dict[tuple[str, int], tuple[int, int, int]]:
    """(pipeline, version) -> (records read, dead-lettered, of those late), summed over
    partitions (and what a version carried over), in one query."""
    parts = [
        select(t.c.pipeline, t.c.version, t.c.records, t.c.dead_lettered, t.c.late)
        for t in (input_counts, carried_counts)
    ]
    both = parts[0].union_all(parts[1]).subquery()
    rows = conn.execute(
        select(
            both.c.pipeline,
            both.c.version,
            func.sum(both.c.records),
            func.sum(both.c.dead_lettered),
            func.sum(both.c.late),
        ).group_by(both.c.pipeline, both.c.version)
    )
    return {(p, v): (int(records), int(dead), int(late)) for p, v, records, dead, late in rows}
