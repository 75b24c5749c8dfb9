"""`kappa-orch status`: per pipeline, the live version, whether it runs the spec's
current fingerprint, and each version's job state, consumer lag, input and dead letters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kappa_orch import registry
from kappa_orch.engine import StreamEngine
from kappa_orch.plan import column_changes, degraded, missing_aliases, missing_version_tables
from kappa_orch.resources.flink import ACTIVE_JOB_STATES
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.fingerprint import fingerprint
from kappa_orch.spec.model import LoadedPipeline


@dataclass(frozen=True)
class VersionStatus:
    version: int
    fingerprint: str
    physical_table: str
    state: str
    flink_job_id: str | None
    job_state: str | None
    lag: int | None
    error: str | None
    input: int = 0  # records its job read (per the job's own counters)
    dead_lettered: int = 0  # of which went to the dead-letter topic
    # records its job dropped as late, per operator: live from Flink while the job runs,
    # else as counted at its gate; None when unknown
    late_records: dict[str, int] | None = None
    # why a live or ready version is degraded (its job is not alive), else None
    degraded: str | None = None

    @property
    def late_total(self) -> int | None:
        return None if self.late_records is None else sum(self.late_records.values())


@dataclass(frozen=True)
class PipelineStatus:
    pipeline: str
    alias: str
    desired_fingerprint: str
    live_version: int | None
    # the live version runs the spec's fingerprint and its job is alive
    in_sync: bool
    # the live version's job is not alive: the alias serves a table nobody updates
    degraded: bool = False
    dead_letter_topic: str = ""
    versions: list[VersionStatus] = field(default_factory=list)
    # what is wrong although the fingerprint may be in sync (e.g. records dropped as late)
    warnings: list[str] = field(default_factory=list)
    # the spec's target columns against the live version's (`+ added`, `- removed`, `~ retyped`)
    column_changes: list[str] = field(default_factory=list)


def pipeline_status(
    pipelines: Sequence[LoadedPipeline],
    *,
    kafka: KafkaResource,
    flink: StreamEngine,
    warehouse: WarehouseResource,
) -> list[PipelineStatus]:
    with warehouse.registry() as conn:
        rows = registry.all_versions(conn)
        live = registry.live_versions(conn)
        totals = registry.input_totals(conn)
        missing = missing_version_tables(conn, pipelines, rows)
        no_alias = missing_aliases(conn, pipelines, live)
    result = []
    for pipeline in pipelines:
        desired = fingerprint(pipeline)
        versions = []
        for row in (r for r in rows if r.pipeline == pipeline.name):
            active = row.state in registry.RUNNING_STATES
            job_state = None
            if active:
                job_state = flink.job_state(row.flink_job_id) if row.flink_job_id else "UNKNOWN"
            lag = None  # only a running job has a meaningful lag
            late = row.late_records
            if job_state in ACTIVE_JOB_STATES:
                lag = sum(
                    sum(kafka.consumer_lag(row.group_id, s.topic).values()) for s in pipeline.spec.sources
                )
                late = flink.known_late_records(row.flink_job_id, metrics_wait_s=0)
            versions.append(
                VersionStatus(
                    version=row.version,
                    fingerprint=row.fingerprint,
                    physical_table=f"{pipeline.spec.target.schema_name}.{row.physical_table}",
                    state=row.state,
                    flink_job_id=row.flink_job_id,
                    job_state=job_state,
                    lag=lag,
                    error=row.error,
                    input=totals.get((row.pipeline, row.version), (0, 0))[0],
                    dead_lettered=totals.get((row.pipeline, row.version), (0, 0))[1],
                    late_records=late,
                    degraded=degraded(row, job_state, (row.pipeline, row.version) not in missing),
                )
            )
        live_version = live.get(pipeline.name)
        live_row = next((v for v in versions if v.version == live_version), None)
        warnings = []
        for v in versions:
            if v.degraded:
                effect = (
                    "the alias serves a table nobody updates"
                    if v.version == live_version
                    else "a rollback to it is refused"
                )
                warnings.append(f"{v.degraded}: {effect}; repair it: kappa-orch repair {pipeline.name}")
        if pipeline.name in no_alias:
            warnings.append(
                f"the alias view {pipeline.spec.target.alias} of live v{live_version} is missing (dropped by "
                f"hand?): readers get an error; rebuild it: kappa-orch repair {pipeline.name}"
            )
        allowed = pipeline.spec.gate.max_late_records
        if live_row is not None and (live_row.late_total or 0) > allowed:
            warnings.append(
                f"live v{live_row.version} dropped {live_row.late_total:,} records as late "
                f"(allowed {allowed:,}): its windows miss them; raise event_time.watermark_delay "
                "or set allowed_lateness, then reprocess"
            )
        result.append(
            PipelineStatus(
                pipeline=pipeline.name,
                alias=pipeline.spec.target.alias,
                desired_fingerprint=desired,
                live_version=live_version,
                in_sync=live_row is not None
                and live_row.fingerprint == desired
                and not live_row.degraded
                and pipeline.name not in no_alias,
                degraded=live_row is not None
                and (live_row.degraded is not None or pipeline.name in no_alias),
                dead_letter_topic=pipeline.spec.dead_letter_topic,
                versions=versions,
                warnings=warnings,
                column_changes=column_changes(
                    next(
                        (r for r in rows if r.pipeline == pipeline.name and r.version == live_version), None
                    ),
                    pipeline,
                ),
            )
        )
    return result
