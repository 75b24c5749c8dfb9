"""A cheap start of a stateless pipeline checked against the log before its job starts
(issue 26, point 4): the newest records before the fence are replayed through the
candidate's own SQL by a bounded Flink batch job, and every row that replay gives must be
in the candidate's table, equal in every column.

At that moment (after the fence's copy or derivation, before the candidate's job starts)
the candidate's table holds exactly the derived rows, and in a pipeline without state each
row is the candidate's SQL over the newest event of its key: so a key whose events fall in
the slice has, in the replay, the row of its newest event before the fence, which is the
row the derivation must have made. The check is independent of the derivation (it reads
the log, not the live table): a column the plan wrongly took to be derivable, or a
derivation that lost or changed rows, is caught here and the candidate replays instead.

The fence's offsets are the live version's input counts at its savepoint (carried to the
candidate, registry.carried): per source partition, the last offset read."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, literal, or_, select

from kappa_orch.engine.protocol import JobTarget
from kappa_orch.errors import KappaError
from kappa_orch.lifecycle.batch import wait_finished
from kappa_orch.lifecycle.log_parity import counted, same_value
from kappa_orch.lifecycle.services import Services
from kappa_orch.registry import store as registry
from kappa_orch.registry.serving import create_version_table, drop_version_table, version_table
from kappa_orch.spec.model import LoadedPipeline

# the newest records of each source replayed (spread over its partitions)
SLICE_RECORDS = 20_000
SLICE_TIMEOUT_S = 600.0
SAMPLES = 5
Ranges = dict[str, dict[int, tuple[int, int]]]


@dataclass(frozen=True)
class SliceCheck:
    records: int  # records of the log replayed (valid or not)
    rows: int  # rows the replay gave: each compared with the candidate's
    missing: int  # of them, keys the candidate's table lacks
    differing: int  # of them, rows whose values differ
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not (self.missing or self.differing)

    def summary(self) -> str:
        if self.passed:
            return (
                f"the newest {self.records:,} records before the fence replayed through the "
                f"candidate's SQL give {self.rows:,} rows, all equal to the derived rows"
            )
        return (
            f"the newest {self.records:,} records before the fence replayed through the candidate's SQL "
            f"give {self.rows:,} rows: {self.missing:,} missing from the derived rows, {self.differing:,} "
            f"with other values (first: {_first(self.samples)})"
        )

    def record(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "records": self.records,
            "rows": self.rows,
            "missing": self.missing,
            "differing": self.differing,
            "samples": self.samples,
            "summary": self.summary(),
        }


def slice_ranges(
    counts: Sequence[registry.InputCount], partitions: Mapping[str, Mapping[int, int]], size: int
) -> Ranges:
    """Per source topic, per partition, the offsets [start, end) of the newest `size`
    records before the fence (`counts`: what the live version read up to it), spread evenly
    over the partitions it read; `partitions`: every partition of each topic, with its first
    offset now (a partition nothing was read of is read from there to there: nothing) (pure)."""
    ranges: Ranges = {}
    for topic, lows in partitions.items():
        read = {c.kafka_partition: c for c in counts if c.source_topic == topic}
        shares = {p: size // len(read) + (i < size % len(read)) for i, p in enumerate(sorted(read))}
        ranges[topic] = {}
        for p, low in lows.items():
            counted = read.get(p)
            if counted is None:
                ranges[topic][p] = (low, low)
                continue
            end = counted.last_offset + 1
            ranges[topic][p] = (max(counted.first_offset, low, end - shares[p]), end)
    return ranges


def verify(pipeline: LoadedPipeline, version: int, services: Services) -> SliceCheck:
    """Replay the slice before the fence into a staging table and compare it with the
    candidate's table (which holds the derived rows only: its job has not started)."""
    spec, warehouse, kafka = pipeline.spec, services.warehouse, services.kafka
    with registry.session(warehouse) as conn:
        counts = registry.input_counts_of(conn, spec.name, version)
    topics = sorted({s.topic for s in spec.sources})
    lows = {t: {p: low for p, (low, _) in kafka.watermarks(t).items()} for t in topics}
    ranges = slice_ranges(counts, lows, SLICE_RECORDS)
    records = sum(e - s for span in ranges.values() for s, e in span.values())
    candidate = spec.target.version_table(version)
    staging = f"{candidate}__slice_{uuid.uuid4().hex[:8]}"
    role = f"{spec.name}:slice:{staging}"
    with warehouse.begin() as conn:
        create_version_table(conn, spec, staging)
        jdbc = warehouse.job_jdbc_options(conn, job=role, writes=[f"{spec.target.schema_name}.{staging}"])
    try:
        target = JobTarget(staging, f"kappa.slice.{spec.name}", kafka.bootstrap_servers, jdbc)
        job = services.engine.slice_job(pipeline, ranges, target)
        job_id = services.engine.submit_sql(
            setup=job.setup, inserts=job.inserts, job_name=job.job_name, configuration=job.configuration
        )
        services.log(f"{spec.name}: replaying the newest {records:,} records before the fence (job {job_id})")
        wait_finished(
            services.engine, job_id, timeout_s=SLICE_TIMEOUT_S, log=services.log, what=f"{spec.name} slice"
        )
        with warehouse.begin() as conn:
            return _compare(conn, pipeline, (staging, candidate), records)
    finally:
        with warehouse.begin() as conn:
            drop_version_table(conn, spec, staging)
            warehouse.drop_job_role(conn, role)


def checked(pipeline: LoadedPipeline, version: int, services: Services) -> dict[str, Any]:
    """The slice check of a cheap start (verify), as its record, told to the log (not
    passed: the candidate replays; a slice that could not be replayed did not pass)."""
    try:
        found = verify(pipeline, version, services)
    except KappaError as exc:
        services.log(
            f"{pipeline.name}: the slice of the log could not be replayed ({exc.problem}); "
            "the candidate replays the log"
        )
        return {"passed": False, "error": exc.problem}
    outcome = "passed" if found.passed else "failed"
    then = "" if found.passed else "; the candidate replays the log"
    services.log(f"{pipeline.name}: slice check {outcome}: {found.summary()}{then}")
    return found.record()


def _compare(conn: Any, pipeline: LoadedPipeline, tables: tuple[str, str], records: int) -> SliceCheck:
    """Every row of the replay (`tables`: its staging table, the candidate's) against the
    candidate's row of the same key."""
    spec = pipeline.spec
    replayed, derived = (version_table(spec, t) for t in tables)
    keys = spec.target.primary_key
    values = [c.name for c in spec.target.columns if c.name not in keys]
    match = and_(*[replayed.c[k] == derived.c[k] for k in keys])
    differ = or_(*[~same_value(spec, replayed, derived, c) for c in values]) if values else literal(False)
    key_columns = [replayed.c[k] for k in keys]
    missing, missing_keys = counted(
        conn,
        select(*key_columns)
        .select_from(replayed.outerjoin(derived, match))
        .where(derived.c[keys[0]].is_(None)),
        SAMPLES,
    )
    differing, differing_rows = counted(
        conn,
        select(*key_columns, *[derived.c[c].label(f"derived_{c}") for c in values],
               *[replayed.c[c].label(f"replayed_{c}") for c in values])
        .select_from(replayed.join(derived, match))
        .where(differ),
        SAMPLES,
    )  # fmt: skip
    rows = int(conn.execute(select(func.count()).select_from(replayed)).scalar_one())
    samples = {k: v for k, v in (("missing", missing_keys), ("differing", differing_rows)) if v}
    return SliceCheck(records, rows, missing, differing, samples)


def _first(samples: Mapping[str, list[dict[str, Any]]]) -> str:
    """The first sample row, for a one-line summary (all of them are in the record)."""
    rows = [row for found in samples.values() for row in found]
    return ", ".join(f"{k}={v}" for k, v in rows[0].items()) if rows else "none kept"
