"""Input counts a version carried over from another's savepoint (issue 26): a version
started from the live version's savepoint counts only the records after the fence, so
the live version's counts at the fence are kept for it (`carried_counts`) and read with
its own (store.input_counts_of): its complete-history and input-balance checks see one
span of offsets from the log's start, as a replay's would."""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select

from kappa_orch.registry.schema import carried_counts, input_counts


def carry_counts(conn: Connection, pipeline: str, from_version: int, to_version: int) -> int:
    """Keep `from_version`'s counts (as its job flushed them at its savepoint) for
    `to_version`; the partitions carried."""
    conn.execute(
        delete(carried_counts).where(
            carried_counts.c.pipeline == pipeline, carried_counts.c.version == to_version
        )
    )
    rows = conn.execute(
        select(input_counts).where(
            input_counts.c.pipeline == pipeline, input_counts.c.version == from_version
        )
    ).all()
    for r in rows:
        conn.execute(
            insert(carried_counts).values(
                pipeline=pipeline,
                version=to_version,
                source_topic=r.source_topic,
                kafka_partition=r.kafka_partition,
                from_version=from_version,
                records=r.records,
                parsed=r.parsed,
                dead_lettered=r.dead_lettered,
                late=r.late,
                first_offset=r.first_offset,
                last_offset=r.last_offset,
            )
        )
    return len(rows)


def forget_counts(conn: Connection, pipeline: str, version: int) -> None:
    """A version that replays after all: nothing carried, nothing counted yet."""
    forget_carried(conn, pipeline, version)
    conn.execute(
        delete(input_counts).where(input_counts.c.pipeline == pipeline, input_counts.c.version == version)
    )


def forget_carried(conn: Connection, pipeline: str, version: int) -> None:
    """A version that replays from the log's start after all: nothing carried."""
    conn.execute(
        delete(carried_counts).where(
            carried_counts.c.pipeline == pipeline, carried_counts.c.version == version
        )
    )
