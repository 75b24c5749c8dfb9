"""Batch tables from the same SQL: the pipeline's SELECT in Flink batch mode over a range
of days of the log, replacing exactly those days of a daily-partitioned table in one
transaction (so running a day twice leaves the same rows).

The read is bounded by offsets, not by timestamps alone: each source starts at the
first record whose timestamp is at or after the first day's start (Kafka's timestamp
index) and stops at the end offsets when the job starts; the SQL sees only records
whose event time falls in the days. Records that arrived late are therefore included.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, Table, delete, func, insert, inspect, select

from kappa_orch.engine.protocol import JobTarget, StreamEngine
from kappa_orch.errors import FlinkJobError, OperationRefused, SpecError
from kappa_orch.lifecycle.services import Services
from kappa_orch.lifecycle.topics import retention_gaps
from kappa_orch.lineage import events as lineage_events
from kappa_orch.progress import Log
from kappa_orch.registry import store as registry
from kappa_orch.registry.serving import create_version_table, drop_version_table, version_table
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.model import LoadedPipeline, PipelineSpec
from kappa_orch.spec.rules import DAY_MS, day_start_ms


def batch_table(spec: PipelineSpec, name: str | None = None) -> Table:
    """The batch table (or a staging copy): the target's columns and key."""
    return version_table(spec, name or spec.batch_table or "")


def log_needed_from(spec: PipelineSpec, first: date, last: date) -> dict[str, int]:
    """Per topic, the earliest time (ms) the run reads from the log: the first day's start,
    or a bootstrap snapshot's `until` when the snapshot covers the days before it (pure).
    Topics the run does not need at all (the snapshot covers every day) are left out."""
    needed: dict[str, int] = {}
    end = day_start_ms(last) + DAY_MS
    for source in spec.sources:
        start = day_start_ms(first)
        if source.bootstrap is not None:
            start = max(start, day_start_ms(source.bootstrap.until))
        if start < end:
            needed[source.topic] = min(start, needed.get(source.topic, start))
    return needed


def _check_snapshots(spec: PipelineSpec, first: date, warehouse: WarehouseResource) -> None:
    for source in spec.sources:
        if source.bootstrap is None or first >= source.bootstrap.until:
            continue
        schema, table = source.bootstrap.table.split(".")
        with warehouse.begin() as conn:
            found = inspect(conn).has_table(table, schema=schema)
        if not found:
            raise OperationRefused(
                f"the bootstrap snapshot {source.bootstrap.table} of source {source.name!r} "
                f"({spec.name!r}) does not exist; days before {source.bootstrap.until} are read from it",
                f"load the snapshot (columns: {', '.join(c.name for c in source.columns)}) or backfill "
                f"from {source.bootstrap.until} on",
            )


@dataclass(frozen=True)
class BatchResult:
    days: list[date]
    rows_per_day: dict[date, int]
    seconds: float
    source_records: int  # records the job could read (offsets from the first day to the end)


def run_batch(
    pipeline: LoadedPipeline, days: Sequence[date], services: Services, *, timeout_s: float = 1800.0
) -> BatchResult:
    """Compute `days` (consecutive) with one Flink batch job and replace them atomically
    (told to OpenLineage as a `<pipeline>.backfill` run: START, COMPLETE or FAIL)."""
    spec = pipeline.spec
    if spec.batch is None or spec.batch_table is None:
        raise SpecError(f"{spec.name!r} declares no batch table", "add a `batch:` section to its spec")
    if not days:
        return BatchResult([], {}, 0.0, 0)
    run_id = lineage_events.run_uuid()
    services.lineage.backfill(pipeline, run_id, "START", days)
    try:
        result = _run_batch(pipeline, days, spec.batch_table, services, timeout_s)
    except BaseException as exc:
        services.lineage.backfill(pipeline, run_id, "FAIL", days, error=f"{type(exc).__name__}: {exc}")
        raise
    services.lineage.backfill(pipeline, run_id, "COMPLETE", days)
    return result


def _run_batch(
    pipeline: LoadedPipeline, days: Sequence[date], table: str, services: Services, timeout_s: float
) -> BatchResult:
    spec, warehouse = pipeline.spec, services.warehouse
    first, last = min(days), max(days)
    started = time.monotonic()
    with (
        computed_days(pipeline, days, table, services, timeout_s=timeout_s) as (staging, read_until),
        registry.session(warehouse) as conn,
    ):
        rows_per_day = replace_days(conn, spec, staging, days)
        registry.record_batch_days(conn, pipeline=spec.name, rows_per_day=rows_per_day, read_until=read_until)
    readable = sum(sum(offsets.values()) for offsets in read_until.values())
    seconds = time.monotonic() - started
    services.log(
        f"{spec.name}: {first}..{last} replaced in {seconds:.1f}s "
        f"({sum(rows_per_day.values()):,} rows over {len(days)} day(s))"
    )
    return BatchResult(sorted(days), rows_per_day, seconds, readable)


@contextmanager
def computed_days(
    pipeline: LoadedPipeline, days: Sequence[date], table: str, services: Services, *, timeout_s: float
) -> Iterator[tuple[str, dict[str, dict[str, int]]]]:
    """The days computed from the log by the pipeline's own SQL in one Flink batch job, into
    a staging table beside `table` (dropped afterwards): its name and the offsets read."""
    spec, kafka, flink, warehouse, log = (
        pipeline.spec,
        services.kafka,
        services.engine,
        services.warehouse,
        services.log,
    )
    first, last = min(days), max(days)
    _refuse_unreadable_days(spec, first, last, kafka)
    _check_snapshots(spec, first, warehouse)
    staging = f"{table}__stage_{uuid.uuid4().hex[:8]}"
    read_until = {
        t: {str(p): high for p, (_, high) in kafka.watermarks(t).items()}
        for t in sorted({s.topic for s in spec.sources})
    }
    jdbc = _make_staging(spec, table, staging, warehouse)
    try:
        target = JobTarget(staging, f"kappa.batch.{spec.name}", kafka.bootstrap_servers, jdbc)
        job = flink.batch_job(pipeline, (first, last), target)
        job_id = flink.submit_sql(
            setup=job.setup, inserts=job.inserts, job_name=job.job_name, configuration=job.configuration
        )
        log(f"{spec.name}: batch job {job_id} for {first}..{last} submitted")
        wait_finished(flink, job_id, timeout_s=timeout_s, log=log, what=f"{spec.name} {first}..{last}")
        yield staging, read_until
    finally:
        with warehouse.begin() as conn:
            drop_version_table(conn, spec, staging)
            warehouse.drop_job_role(conn, f"{spec.name}:batch:{staging}")


def _refuse_unreadable_days(spec: PipelineSpec, first: date, last: date, kafka: KafkaResource) -> None:
    """Days before the batch's start, or that the log no longer holds, are refused."""
    assert spec.batch is not None
    if first < spec.batch.start_date:
        raise OperationRefused(
            f"{first} is before the batch start_date {spec.batch.start_date} of {spec.name!r}",
            f"backfill from {spec.batch.start_date} on, or move batch.start_date in the spec",
        )
    gaps = []
    for topic, needed_from in log_needed_from(spec, first, last).items():
        gaps += retention_gaps(kafka, [topic], needed_from)
    if gaps:
        raise OperationRefused(
            f"the log no longer holds all of {first}..{last} for {spec.name!r}:\n  " + "\n  ".join(gaps),
            "backfill only days the topics still hold, or declare a bootstrap snapshot table on the source "
            "(sources[].bootstrap: {table, until}) that holds the events before the topic's oldest day",
        )


def _make_staging(
    spec: PipelineSpec, table: str, staging: str, warehouse: WarehouseResource
) -> dict[str, str]:
    """The batch table and a staging table; the job's own role writes the staging table
    only, and reads the bootstrap snapshots. Its JDBC options."""
    with warehouse.begin() as conn:
        create_version_table(conn, spec, table)
        create_version_table(conn, spec, staging)
        return warehouse.job_jdbc_options(
            conn,
            job=f"{spec.name}:batch:{staging}",
            writes=[f"{spec.target.schema_name}.{staging}"],
            reads=[s.bootstrap.table for s in spec.sources if s.bootstrap is not None],
        )


def replace_days(conn: Connection, spec: PipelineSpec, staging: str, days: Sequence[date]) -> dict[date, int]:
    """Delete the days from the batch table and insert them from staging (caller's transaction)."""
    assert spec.batch is not None
    target, source = batch_table(spec), batch_table(spec, staging)
    day = target.c[spec.batch.day_column]
    conn.execute(delete(target).where(day.in_(list(days))))
    columns = [c.name for c in target.columns]
    conn.execute(
        insert(target).from_select(
            columns,
            select(*[source.c[c] for c in columns]).where(source.c[spec.batch.day_column].in_(list(days))),
        )
    )
    counts: dict[date, int] = {
        d: n for d, n in conn.execute(select(day, func.count()).where(day.in_(list(days))).group_by(day))
    }
    return {d: int(counts.get(d, 0)) for d in days}


def wait_finished(flink: StreamEngine, job_id: str, *, timeout_s: float, log: Log, what: str) -> None:
    """Wait for a bounded job to finish; a job that fails or outlasts `timeout_s` (then
    cancelled) raises FlinkJobError with its cause."""
    deadline = time.monotonic() + timeout_s
    last_report = time.monotonic()
    while True:
        state = flink.job_state(job_id)
        if state == "FINISHED":
            return
        if state in {"FAILED", "CANCELED", "UNKNOWN"}:
            cause = flink.job_exception(job_id) or ""
            raise FlinkJobError(
                f"the batch job {job_id} for {what} is {state}"
                + (f": {cause.splitlines()[0][:500]}" if cause else ""),
                "read the job's exception in the Flink UI, fix the cause and run the days again",
            )
        if time.monotonic() > deadline:
            flink.cancel(job_id)
            raise FlinkJobError(
                f"the batch job for {what} did not finish within {timeout_s:.0f}s; cancelled it"
            )
        if time.monotonic() - last_report > 10:
            log(f"{what}: batch job {job_id} {state}")
            last_report = time.monotonic()
        time.sleep(0.5)


def consecutive_runs(days: Sequence[date], per_run: int) -> list[list[date]]:
    """Split days into runs of consecutive days, at most per_run each (pure)."""
    runs: list[list[date]] = []
    for day in sorted(set(days)):
        if runs and day - runs[-1][-1] == timedelta(days=1) and len(runs[-1]) < per_run:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def late_days(
    reads: Mapping[date, Mapping[str, Mapping[str, int]]], records: Sequence[tuple[str, int, int, int]]
) -> set[date]:
    """Materialised days that records (topic, partition, offset, timestamp ms) arrived for
    after the day was computed (pure)."""
    late = set()
    for topic, partition, offset, timestamp in records:
        day = datetime.fromtimestamp(timestamp / 1000, UTC).date()
        read = reads.get(day)
        if read is None:
            continue
        until = read.get(topic, {}).get(str(partition))
        if until is not None and offset >= until:
            late.add(day)
    return late
