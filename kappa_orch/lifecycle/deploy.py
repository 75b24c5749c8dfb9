"""Deploying a pipeline's current fingerprint: a pure plan, then a small apply.

The plan reads the registry and the Flink job states and decides: nothing (this
fingerprint already runs), deploy (a new version table__vN with its own job and
consumer group) or redeploy (the version exists but its job failed or is gone).
Apply carries it out and records every step in the registry, so a crash at any
point is repaired by deploying again.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection

from kappa_orch.config import retention_ms
from kappa_orch.engine.protocol import CompiledJob, JobDefinition, JobTarget, StreamEngine
from kappa_orch.errors import FlinkJobError, KappaError
from kappa_orch.lifecycle.cheap import Candidate, forget, start_cheaply
from kappa_orch.lifecycle.deploy_checks import (
    check_replay_history,
    refuse_unrunnable_checks,
    refuse_without_slot,
)
from kappa_orch.lifecycle.orphans import ORPHAN_GRACE_S, Orphan, adopt, settle_orphans
from kappa_orch.lifecycle.restore import restore_path
from kappa_orch.lifecycle.services import Services
from kappa_orch.plan.change import Change, job_settings
from kappa_orch.plan.decide import DeployPlan, plan_deploy
from kappa_orch.progress import Log
from kappa_orch.registry import carried, transitions
from kappa_orch.registry import store as registry
from kappa_orch.registry.serving import create_version_table, drop_version_table, existing_tables
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.spec.model import LoadedPipeline


@dataclass(frozen=True)
class DeployResult:
    plan: DeployPlan
    flink_job_id: str | None
    deployed_offsets: dict[str, dict[str, int]] = field(default_factory=dict)


def version_definition(pipeline: LoadedPipeline) -> dict[str, object]:
    """What the registry keeps of a version's spec: enough to serve it without the spec."""
    from pathlib import Path

    target = pipeline.spec.target
    spec_file = Path(pipeline.path)
    return {
        "columns": [[c.name, c.type] for c in target.columns],
        "primary_key": list(target.primary_key),
        "sql": pipeline.sql_text,
        "spec": spec_file.read_text() if spec_file.is_file() else None,
        "job_settings": job_settings(pipeline),
    }


@dataclass(frozen=True)
class _Prepared:
    """A version made ready for its job: recorded, its table made, its role granted."""

    plan: DeployPlan
    rows: list[registry.VersionRow]
    previous_state: str | None
    table_existed: bool
    jdbc: dict[str, str]
    change: Change | None = None  # the change against the live version, when classified


def deploy(
    pipeline: LoadedPipeline,
    services: Services,
    *,
    holds_claim: bool = False,
    change: Change | None = None,
    force: bool = False,
) -> DeployResult:
    """Deploy the pipeline's current fingerprint unless it already runs.

    Deploying never moves the alias, not even for a pipeline's first version: the alias
    appears when the version has caught up and passed its gate (`swap.swap`). `change`: the
    spec's change against the live version when the caller classified it already. `force`:
    a new version that replays the log even when this fingerprint has one (plan_deploy)."""
    spec, kafka = pipeline.spec, services.kafka
    # before anything is written: the checks can run as written, and every source topic
    # exists (a clear error otherwise)
    refuse_unrunnable_checks(pipeline)
    offsets = {
        source.topic: {str(p): o for p, o in kafka.end_offsets(source.topic).items()}
        for source in spec.sources
    }
    topic_ids = kafka.topic_ids(source.topic for source in spec.sources)
    prepared = _prepare(pipeline, services, _Asked(holds_claim, offsets, topic_ids, change, force))
    if isinstance(prepared, DeployResult):
        return prepared
    partitions = max(len(p) for p in offsets.values())
    ensure_dead_letter_topic(pipeline, kafka=kafka, log=services.log, partitions=partitions)
    job_id = _submit(pipeline, prepared, services)
    _record_job(pipeline, prepared, job_id, (offsets, topic_ids), services)
    plan = prepared.plan
    services.lineage.deployed(pipeline, plan.version, plan.fingerprint, plan.physical_table, job_id)
    return DeployResult(plan, job_id, offsets)


def replay_from_start(
    pipeline: LoadedPipeline, row: registry.VersionRow, services: Services, why: str
) -> DeployResult:
    """Redeploy a version from the log's start with nothing carried (the fallback of a
    cheap start its gate could not verify): its job is cancelled, its table and carried
    counts emptied, the registry forgets the job (so no checkpoint of it is resumed), and
    the version is deployed again under the caller's claim; its definition keeps why."""
    name = pipeline.name
    if row.flink_job_id:
        with contextlib.suppress(KappaError):
            services.engine.cancel(row.flink_job_id)
    forget(pipeline, row.version, services)
    definition = dict(row.definition or {})
    definition["cheap_start"] = {**definition.get("cheap_start", {}), "fell_back": why}
    with services.warehouse.begin() as conn:
        transitions.mark_deploying(conn, name, row.version)
        transitions.record(conn, name, row.version, definition=definition)
    services.log(f"{name}: v{row.version} replays the log instead: {why}")
    return deploy(pipeline, services, holds_claim=True)


def ensure_dead_letter_topic(
    pipeline: LoadedPipeline, *, kafka: KafkaResource, log: Log, partitions: int | None = None
) -> bool:
    """Create the pipeline's dead-letter topic when it is missing (the broker does not
    create topics on first write, and a job whose topic was deleted blocks on its letters);
    True when it was created."""
    spec = pipeline.spec
    retention = retention_ms(spec.dead_letters.retention) or kafka.dead_letter_retention_ms
    config = {"retention.ms": str(retention)} if retention is not None else {}
    if partitions is None:
        partitions = max(len(kafka.end_offsets(s.topic)) for s in spec.sources)
    if not kafka.create_topic(spec.dead_letter_topic, partitions=partitions, config=config, exist_ok=True):
        return False
    kept = (
        "forever" if retention == -1 else f"{retention / 86_400_000:g} days" if retention else "the broker's"
    )
    log(f"{spec.name}: created dead-letter topic {spec.dead_letter_topic} (retention {kept})")
    return True


def _prepare(pipeline: LoadedPipeline, services: Services, asked: _Asked) -> _Prepared | DeployResult:
    """Under the pipeline's lock: adopt or cancel the jobs the registry does not know
    (orphans), plan, refuse what cannot run, record the version, make its table and its
    job's role. A DeployResult when the fingerprint already runs."""
    spec, flink, warehouse, log = pipeline.spec, services.engine, services.warehouse, services.log
    claimed, topic_ids = asked.holds_claim, asked.topic_ids
    with registry.session(warehouse) as conn:
        registry.lock_pipeline(conn, spec.name)
        rows = registry.pipeline_versions(conn, spec.name)
        if _settle_orphans(conn, pipeline, rows, asked, services):
            rows = registry.pipeline_versions(conn, spec.name)
        job_states = {r.flink_job_id: flink.job_state(r.flink_job_id) for r in rows if r.flink_job_id}
        plan = plan_deploy(
            pipeline,
            rows=rows,
            job_states=job_states,
            now=datetime.now(UTC),
            holds_claim=claimed,
            topic_ids=topic_ids,
            force=asked.force,
        )
        refusal = plan.refusal()
        if refusal is not None:
            raise refusal
        log(f"{spec.name}: {plan.action} v{plan.version} ({plan.reason})")
        if plan.action == "none":
            row = next(r for r in rows if r.version == plan.version)
            return DeployResult(plan, row.flink_job_id, row.deployed_offsets or {})
        previous_state = next((r.state for r in rows if r.version == plan.version), None)
        refuse_without_slot(conn, spec.name, plan.version, flink)
        if plan.action == "deploy":
            check_replay_history(pipeline, services.kafka)
        _record_version(conn, pipeline, plan, previous_state)
        table_existed = (spec.target.schema_name, plan.physical_table) in existing_tables(
            conn, {spec.target.schema_name}
        )
        create_version_table(conn, spec, plan.physical_table)
        # the job's own role: its version table and its input-count rows, nothing else
        jdbc = warehouse.job_jdbc_options(
            conn,
            job=f"{spec.name}:v{plan.version}",
            writes=[f"{spec.target.schema_name}.{plan.physical_table}"],
            pipeline=spec.name,
            version=plan.version,
        )
    return _Prepared(plan, rows, previous_state, table_existed, jdbc, asked.change)


@dataclass(frozen=True)
class _Asked:
    """What a deploy was asked under, and what it read before the pipeline's lock."""

    holds_claim: bool  # the caller holds the pipeline's claim: no other run deploys now
    offsets: dict[str, dict[str, int]]  # the sources' end offsets
    topic_ids: dict[str, str | None]  # the sources' Kafka topic ids
    change: Change | None = None  # the change against the live version, when classified
    force: bool = False  # a full replay into a new version was asked for


def _settle_orphans(
    conn: Connection,
    pipeline: LoadedPipeline,
    rows: list[registry.VersionRow],
    asked: _Asked,
    services: Services,
) -> bool:
    """Adopt the job a killed run submitted for an in-flight version (it is recorded, not
    submitted twice); cancel the pipeline's other unknown jobs. A caller holding the claim
    knows no other run is between submitting and recording: no grace. True if any."""

    def adopted(orphan: Orphan) -> None:
        adopt(conn, orphan, deployed_offsets=asked.offsets, source_topic_ids=asked.topic_ids)

    grace_s = 0.0 if asked.holds_claim else ORPHAN_GRACE_S
    found = settle_orphans(pipeline.name, rows, services, adopt=adopted, grace_s=grace_s)
    return bool(found)


def _record_version(
    conn: Connection, pipeline: LoadedPipeline, plan: DeployPlan, previous_state: str | None
) -> None:
    spec = pipeline.spec
    if plan.releases is not None:
        # its log was replaced: it keeps serving until the replay swaps, without the fingerprint
        transitions.record(conn, spec.name, plan.releases, fingerprint=f"{plan.fingerprint}~v{plan.releases}")
    if plan.action == "deploy":
        new = registry.NewVersion(
            spec.name,
            plan.version,
            plan.fingerprint,
            plan.physical_table,
            plan.group_id,
            version_definition(pipeline),
        )
        registry.add_version(conn, new)
    elif previous_state in (registry.LIVE, registry.READY):
        # a serving version keeps its state while its job is replaced (a crash before the
        # new job is recorded leaves it degraded, which the next repair takes over at once)
        transitions.record(conn, spec.name, plan.version, flink_job_id=None, error=None)
    else:
        transitions.mark_deploying(conn, spec.name, plan.version)


def _resume_point(pipeline: LoadedPipeline, prepared: _Prepared, flink: StreamEngine, log: Log) -> str | None:
    """A redeployed version resumes from its old job's last completed checkpoint when there
    is one (state and offsets together); otherwise it replays from the start position."""
    spec, plan = pipeline.spec, prepared.plan
    if plan.action != "redeploy":
        return None
    row = next((r for r in prepared.rows if r.version == plan.version), None)
    resume_from, told_by = restore_path(row, flink)
    if not prepared.table_existed:
        # the state of a checkpoint describes rows the new, empty table does not hold
        log(f"{spec.name}: v{plan.version}'s table {plan.physical_table} was missing; recreated empty")
        resume_from = None
    log(
        f"{spec.name}: v{plan.version} resumes from {resume_from} (as told by {told_by})"
        if resume_from
        else f"{spec.name}: v{plan.version} has no retained checkpoint; its job replays the log"
    )
    return resume_from


def _compiled(
    pipeline: LoadedPipeline, prepared: _Prepared, job: JobDefinition, services: Services
) -> CompiledJob | None:
    """The plan the version's job runs: a new version's job is compiled (when the engine
    keeps plans); a redeployed version runs the plan it was first started from, or, started
    before plans were kept, its statement set again (its checkpoints know only the engine's
    automatic operator ids). A query the engine cannot compile runs as a statement set."""
    plan = prepared.plan
    if plan.action == "redeploy":
        with registry.session(services.warehouse) as conn:
            stored = registry.version_plan(conn, pipeline.name, plan.version)
        return CompiledJob(stored.fingerprint, stored.stateful, stored.document) if stored else None
    try:
        compiled = services.engine.compile_job(job)
    except FlinkJobError as exc:
        services.log(
            f"{pipeline.name}: v{plan.version}'s job could not be compiled into a plan; it runs as a "
            f"statement set (a later change of it replays in full): {exc.problem.splitlines()[-1]}"
        )
        return None
    if compiled is not None:
        # kept before the job starts: a job adopted after a crash runs this plan too
        with registry.session(services.warehouse) as conn:
            stored = registry.StoredPlan(compiled.fingerprint, compiled.stateful, compiled.document)
            registry.save_plan(conn, pipeline.name, plan.version, stored)
    return compiled


def _submit(pipeline: LoadedPipeline, prepared: _Prepared, services: Services) -> str:
    """Submit the version's job (from its compiled plan when it has one); on failure nothing
    is left half-applied."""
    spec, plan, flink, log = pipeline.spec, prepared.plan, services.engine, services.log
    target = JobTarget(plan.physical_table, plan.group_id, services.kafka.bootstrap_servers, prepared.jdbc)
    job = flink.version_job(pipeline, plan.version, target)
    resume_from = _resume_point(pipeline, prepared, flink, log)
    if plan.action == "redeploy" and resume_from is None:
        # it replays from the log's start: counts a cheap start carried (to a fence it did
        # not get past, or whose state is lost) would count that span twice
        with services.warehouse.begin() as conn:
            carried.forget_carried(conn, spec.name, plan.version)
    try:
        job_id = _start_job(pipeline, prepared, job, resume_from, services)
    except Exception as exc:
        # the empty table goes, the registry keeps the reason
        with services.warehouse.begin() as conn:
            if plan.action == "deploy":
                drop_version_table(conn, spec, plan.physical_table)
            # a serving version stays what it is (degraded, with the reason); others fail
            serving = prepared.previous_state in (registry.LIVE, registry.READY)
            if serving:
                transitions.record(conn, spec.name, plan.version, error=str(exc))
            else:
                transitions.mark_failed(conn, spec.name, plan.version, str(exc))
        raise
    log(f"{spec.name}: v{plan.version} job {job_id} submitted, consumer group {plan.group_id}")
    return job_id


def _start_job(
    pipeline: LoadedPipeline,
    prepared: _Prepared,
    job: JobDefinition,
    resume_from: str | None,
    services: Services,
) -> str:
    """Start the version's job: a new version of a change its plan proves safe starts from
    the live version's savepoint (lifecycle.cheap), any other from its compiled plan (or as
    a statement set), resuming from `resume_from` when given."""
    plan, flink = prepared.plan, services.engine
    compiled = _compiled(pipeline, prepared, job, services)
    if compiled is not None and plan.action == "deploy" and plan.releases is None:

        def restart_live(live: LoadedPipeline) -> object:
            return deploy(live, services, holds_claim=True)

        candidate = Candidate(plan.version, job, compiled, prepared.change)
        started = start_cheaply(pipeline, candidate, services, restart_live)
        if started is not None:
            return started
    if compiled is not None:
        return flink.submit_plan(job, compiled.document, savepoint_path=resume_from)
    return flink.submit_sql(
        setup=job.setup,
        inserts=job.inserts,
        job_name=job.job_name,
        configuration=job.configuration,
        savepoint_path=resume_from,
    )


def _record_job(
    pipeline: LoadedPipeline,
    prepared: _Prepared,
    job_id: str,
    read: tuple[dict[str, dict[str, int]], dict[str, str | None]],
    services: Services,
) -> None:
    """Record the job, with the end offsets and topic ids of its sources as it started (`read`);
    a job the registry could not record is cancelled, not left unknown. A redeployed version
    keeps the topic ids it first read: its state and table come from those topics."""
    spec, plan = pipeline.spec, prepared.plan
    offsets, topic_ids = read
    row = next((r for r in prepared.rows if r.version == plan.version), None)
    ids = row.source_topic_ids if row is not None and row.source_topic_ids else topic_ids
    try:
        with services.warehouse.begin() as conn:
            registry.lock_pipeline(conn, spec.name)
            # a redeployed live version stays live: the alias still serves it
            if registry.live_versions(conn).get(spec.name) == plan.version:
                state = registry.LIVE
            elif prepared.previous_state == registry.READY:
                state = registry.READY  # gated before; its job resumes where it was
            else:
                state = registry.CATCHING_UP
            transitions.mark_job_started(
                conn,
                spec.name,
                plan.version,
                state,
                flink_job_id=job_id,
                deployed_offsets=offsets,
                source_topic_ids=ids,
            )
    except Exception:
        with contextlib.suppress(Exception):
            services.engine.cancel(job_id, wait=False)
        services.log(f"{spec.name}: recording job {job_id} failed; the job was cancelled")
        raise
