"""The batch job of a pipeline in Flink SQL: its own SQL over the events of a range of
days, read from the log (bounded: from the first day's start to the log's end now) and,
before a bootstrap snapshot's `until`, from the snapshot table (StreamEngine.batch_job); and
its SQL over a slice of offsets (StreamEngine.slice_job)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from kappa_orch.engine.flink.sources import (
    checked_source_ddl,
    function_ddl,
    snapshot_source_ddl,
    snapshot_table,
    valid_view_ddl,
)
from kappa_orch.engine.flink.sql import JOB_CONFIGURATION, sink_ddl
from kappa_orch.engine.protocol import JobDefinition, JobTarget
from kappa_orch.spec.model import LoadedPipeline
from kappa_orch.spec.rules import DAY_MS, day_start_ms


def batch_job(pipeline: LoadedPipeline, days: tuple[date, date], target: JobTarget) -> JobDefinition:
    """The Flink batch job computing the days `first..last` (`days`) into the target table."""
    spec, (first, last), bootstrap, jdbc = pipeline.spec, days, target.bootstrap, target.jdbc
    begin, end = day_start_ms(first), day_start_ms(last) + DAY_MS
    setup = function_ddl()
    for source in spec.sources:
        # with a bootstrap snapshot, days before its `until` come from the snapshot
        until = day_start_ms(source.bootstrap.until) if source.bootstrap else None
        log_from = begin if until is None else max(begin, until)
        setup += checked_source_ddl(
            source,
            bootstrap=bootstrap,
            group_id=target.group_id,
            startup_mode="timestamp",
            extra_options={
                "scan.startup.timestamp-millis": str(log_from),
                "scan.bounded.mode": "latest-offset",
            },
        )
        event_time = source.event_time.column if source.event_time else "event_time"

        def in_range(start: int, stop: int, column: str = event_time) -> str:
            return f"`{column}` >= TO_TIMESTAMP_LTZ({start}, 3) AND `{column}` < TO_TIMESTAMP_LTZ({stop}, 3)"

        snapshot = None
        if until is not None and begin < until:
            setup.append(snapshot_source_ddl(source, jdbc=jdbc))
            columns = ", ".join(f"`{c}`" for c in source.sql_columns())
            snapshot = (
                f"SELECT {columns} FROM `{snapshot_table(source)}` WHERE {in_range(begin, min(end, until))}"
            )
        # the same valid events the streaming job reads (dead letters are the streaming job's to report)
        setup.append(valid_view_ddl(source, where=in_range(log_from, end), union=snapshot))
    return _bounded(pipeline, f"batch:{first.isoformat()}..{last.isoformat()}", setup, target)


def _bounded(pipeline: LoadedPipeline, what: str, setup: list[str], target: JobTarget) -> JobDefinition:
    """The pipeline's SQL in Flink batch mode from the sources `setup` declares into the
    target table (its sink declared here)."""
    setup = [*setup, sink_ddl(pipeline.spec, physical_table=target.table, jdbc=target.jdbc)]
    select_sql = pipeline.sql_text.strip().rstrip(";")
    return JobDefinition(
        job_name=f"kappa:{pipeline.spec.name}:{what}",
        setup=setup,
        inserts=[f"INSERT INTO `kappa_sink`\n{select_sql}"],
        configuration={**JOB_CONFIGURATION, "execution.runtime-mode": "batch"},
    )


def specific_offsets(offsets: Mapping[int, int]) -> str:
    """Flink's Kafka connector's form of per-partition offsets (pure)."""
    return ";".join(f"partition:{p},offset:{o}" for p, o in sorted(offsets.items()))


def slice_job(
    pipeline: LoadedPipeline, ranges: Mapping[str, Mapping[int, tuple[int, int]]], target: JobTarget
) -> JobDefinition:
    """The pipeline's SQL over exactly the offsets `ranges` (per topic, per partition
    [start, end)) of its sources, as a bounded job into the target table: a slice of the
    log replayed (every partition of a topic must be listed; start == end reads none)."""
    spec = pipeline.spec
    setup = function_ddl()
    for source in spec.sources:
        span = ranges[source.topic]
        setup += checked_source_ddl(
            source,
            bootstrap=target.bootstrap,
            group_id=target.group_id,
            startup_mode="specific-offsets",
            extra_options={
                "scan.startup.specific-offsets": specific_offsets({p: s for p, (s, _) in span.items()}),
                "scan.bounded.mode": "specific-offsets",
                "scan.bounded.specific-offsets": specific_offsets({p: e for p, (_, e) in span.items()}),
            },
        )
        setup.append(valid_view_ddl(source))
    return _bounded(pipeline, "slice", setup, target)
