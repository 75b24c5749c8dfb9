"""`kappa-orch status`: per pipeline, the live version, whether it runs the spec's
current fingerprint, the last swap, failed scheduled checks, and each version's job
state, consumer lag, checkpoint age, late records, input and dead letters."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kappa_orch.engine.protocol import ACTIVE_JOB_STATES, StreamEngine
from kappa_orch.lifecycle.gate import failed_candidate_fix, late_records
from kappa_orch.lifecycle.orphans import Orphan, find_orphans
from kappa_orch.lifecycle.services import Services
from kappa_orch.plan.decide import column_changes, degraded
from kappa_orch.plan.replay_checks import replaced_log_problem, replaced_logs
from kappa_orch.registry import store as registry
from kappa_orch.registry.check_history import CheckOutcome, last_checks
from kappa_orch.registry.serving import missing_aliases, missing_version_tables
from kappa_orch.resources.kafka import KafkaResource
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
    # records that arrived late, by where they went (gate.late_records): live while the job
    # runs, else as counted at its gate; None when unknown
    late_records: dict[str, int] | None = None
    # why a live or ready version is degraded (its job is not alive), else None
    degraded: str | None = None
    # seconds since its job's last completed checkpoint (None: not running, or none yet)
    checkpoint_age_s: float | None = None
    # the rows its gate's failed checks named (`check: row`), by primary key
    gate_rows: list[str] = field(default_factory=list)

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
    # the last swap: from, to, at (ISO), reason, by, git_commit, run_id; None before the first
    last_swap: dict[str, Any] | None = None
    # the last outcome of each scheduled data-quality check: check, passed, summary, at, run_id
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed_checks(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if not c["passed"]]


@dataclass(frozen=True)
class _Registry:
    rows: list[registry.VersionRow]
    live: dict[str, int]
    totals: dict[tuple[str, int], tuple[int, int, int]]
    missing: frozenset[tuple[str, int]]
    no_alias: frozenset[str]
    swaps: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    checks: dict[str, list[CheckOutcome]] = field(default_factory=dict)


def pipeline_status(pipelines: Sequence[LoadedPipeline], services: Services) -> list[PipelineStatus]:
    kafka, flink = services.kafka, services.engine
    with registry.session(services.warehouse) as conn:
        rows = registry.all_versions(conn)
        live = registry.live_versions(conn)
        seen = _Registry(
            rows,
            live,
            registry.input_totals(conn),
            missing_version_tables(conn, pipelines, rows),
            missing_aliases(conn, pipelines, live),
            registry.recent_swaps(conn, [p.name for p in pipelines], 1),
            last_checks(conn),
        )
    # asked once: which dead-letter topics exist, and the source topics' ids
    topics = _Asked(
        set(kafka.list_topics()),
        kafka.topic_ids({s.topic for p in pipelines for s in p.spec.sources}),
        find_orphans(flink.list_jobs(), seen.rows, prefix=flink.job_name("")),
    )
    return [_pipeline_status(p, seen, topics, kafka=kafka, flink=flink) for p in pipelines]


@dataclass(frozen=True)
class _Asked:
    names: set[str]
    ids: dict[str, str | None]
    orphans: list[Orphan]  # jobs kappa_orch started that the registry does not know


def _pipeline_status(
    pipeline: LoadedPipeline, seen: _Registry, topics: _Asked, *, kafka: KafkaResource, flink: StreamEngine
) -> PipelineStatus:
    desired = pipeline.fingerprint
    mine = [r for r in seen.rows if r.pipeline == pipeline.name]
    versions = [_version_status(pipeline, row, seen, kafka=kafka, flink=flink) for row in mine]
    topic = pipeline.spec.dead_letter_topic
    if any(v.state in registry.RUNNING_STATES for v in versions) and topic not in topics.names:
        why = f"the dead-letter topic {topic} is missing: its job cannot write dead letters"
        versions = [
            replace(v, degraded=v.degraded or why) if v.state in registry.RUNNING_STATES else v
            for v in versions
        ]
    for row in mine:
        replaced = replaced_logs(row, topics.ids) if row.state in registry.RUNNING_STATES else []
        if replaced:
            why = replaced_log_problem(pipeline.name, row, replaced)
            versions = [replace(v, degraded=why) if v.version == row.version else v for v in versions]
    live_version = seen.live.get(pipeline.name)
    live_row = next((v for v in versions if v.version == live_version), None)
    no_alias = pipeline.name in seen.no_alias
    return PipelineStatus(
        pipeline=pipeline.name,
        alias=pipeline.spec.target.alias,
        desired_fingerprint=desired,
        live_version=live_version,
        in_sync=live_row is not None
        and live_row.fingerprint == desired
        and not live_row.degraded
        and not no_alias,
        degraded=live_row is not None and (live_row.degraded is not None or no_alias),
        dead_letter_topic=pipeline.spec.dead_letter_topic,
        versions=versions,
        warnings=_warnings(
            pipeline,
            versions,
            live_version,
            no_alias,
            [_check(c) for c in seen.checks.get(pipeline.name, []) if not c.passed],
        )
        + [
            f"{o.describe()} runs unknown to the registry, holding a task slot: "
            + (
                "the next deploy adopts it"
                if o.adoptable
                else f"kappa-orch repair {pipeline.name} cancels it"
            )
            for o in topics.orphans
            if o.pipeline == pipeline.name
        ],
        column_changes=column_changes(next((r for r in mine if r.version == live_version), None), pipeline),
        last_swap=_swap(seen.swaps.get(pipeline.name)),
        checks=[_check(c) for c in seen.checks.get(pipeline.name, [])],
    )


def _swap(recent: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    if not recent:
        return None
    swap = recent[0]
    return {
        "from": swap["from_version"],
        "to": swap["to_version"],
        "at": swap["swapped_at"].isoformat(),
        "reason": swap["reason"],
        "by": swap["swapped_by"],
        "git_commit": swap["git_commit"],
        "run_id": swap["run_id"],
    }


def _check(outcome: CheckOutcome) -> dict[str, Any]:
    return {
        "check": outcome.check_name,
        "passed": outcome.passed,
        "summary": outcome.summary,
        "at": outcome.checked_at.isoformat() if outcome.checked_at else None,
        "run_id": outcome.run_id,
    }


def _version_status(
    pipeline: LoadedPipeline,
    row: registry.VersionRow,
    seen: _Registry,
    *,
    kafka: KafkaResource,
    flink: StreamEngine,
) -> VersionStatus:
    job_state = failing = None
    if row.state in registry.RUNNING_STATES:
        job_state = flink.job_state(row.flink_job_id) if row.flink_job_id else "UNKNOWN"
    elif row.state == registry.FAILED and row.flink_job_id:
        job_state = flink.job_state(row.flink_job_id)  # stopped with a savepoint, normally
    lag = age = None  # only a running job has a meaningful lag and checkpoint age
    late = row.late_records
    counted, dead, routed = seen.totals.get((row.pipeline, row.version), (0, 0, 0))
    if job_state in ACTIVE_JOB_STATES:
        lag = sum(sum(kafka.consumer_lag(row.group_id, s.topic).values()) for s in pipeline.spec.sources)
        late = late_records(routed, flink.known_late_records(row.flink_job_id, metrics_wait_s=0))
        checkpoint, failing = flink.checkpoint_stats(row.flink_job_id or "")
        if failing:  # a job failing and restarting: say why it failed (e.g. a write refused)
            cause = flink.job_root_cause(row.flink_job_id or "")
            failing += f"; its last failure: {cause}" if cause else ""
        if checkpoint is not None:
            age = round(max(0.0, time.time() - checkpoint.completed_at_ms / 1000), 1)
    return VersionStatus(
        version=row.version,
        fingerprint=row.fingerprint,
        physical_table=f"{pipeline.spec.target.schema_name}.{row.physical_table}",
        state=row.state,
        flink_job_id=row.flink_job_id,
        job_state=job_state,
        lag=lag,
        error=row.error,
        input=counted,
        dead_lettered=dead,
        late_records=late,
        degraded=degraded(row, job_state, (row.pipeline, row.version) not in seen.missing)
        or (f"v{row.version}'s checkpoints are failing: {failing}" if failing else None),
        checkpoint_age_s=age,
        gate_rows=gate_rows(row),
    )


def gate_rows(row: registry.VersionRow) -> list[str]:
    """The rows the version's gate named under its failed checks (`check: row`)."""
    results = row.check_results or {}
    return [
        f"{name}: {line}"
        for name, result in results.items()
        if not result.get("passed")
        for line in result.get("rows") or []
    ]


def _warnings(
    pipeline: LoadedPipeline,
    versions: list[VersionStatus],
    live_version: int | None,
    no_alias: bool,
    failed: list[dict[str, Any]],
) -> list[str]:
    """What is wrong although the fingerprint may be in sync, each with its fix."""
    warnings = []
    for v in versions:
        if v.degraded:
            effect = (
                "the alias serves a table nobody updates"
                if v.version == live_version
                else "a rollback to it is refused"
                if v.state == registry.READY
                else "its catch-up stalls"
            )
            warnings.append(f"{v.degraded}: {effect}; repair it: kappa-orch repair {pipeline.name}")
    if no_alias:
        warnings.append(
            f"the alias view {pipeline.spec.target.alias} of live v{live_version} is missing (dropped by "
            f"hand?): readers get an error; rebuild it: kappa-orch repair {pipeline.name}"
        )
    desired = pipeline.fingerprint
    for v in versions:
        if v.state == registry.FAILED and v.fingerprint == desired:
            why = (v.error or "failed").splitlines()[0][:400]
            running = f" (its job is still {v.job_state})" if v.job_state in ACTIVE_JOB_STATES else ""
            warnings.append(
                f"candidate v{v.version} failed{running}: {why}. {failed_candidate_fix(pipeline.name)}"
            )
    live_row = next((v for v in versions if v.version == live_version), None)
    allowed = pipeline.spec.gate.max_late_records
    if live_row is not None and (live_row.late_total or 0) > allowed:
        warnings.append(
            f"live v{live_row.version} had {live_row.late_total:,} records arrive late "
            f"(allowed {allowed:,}): its windows miss them (see dead-letters); raise "
            "event_time.watermark_delay or set allowed_lateness, then reprocess"
        )
    return warnings + [
        f"scheduled check {c['check']} failed at {c['at'][:19]} (run {c['run_id']}): {c['summary'][:300]}"
        for c in failed
    ]
