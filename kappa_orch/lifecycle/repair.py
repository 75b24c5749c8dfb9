"""Repairing lost jobs: a live or ready version whose Flink job is gone (a TaskManager
or the whole cluster died, someone cancelled it in the Flink UI) is redeployed from its
own recorded definition, resuming from its last retained checkpoint; a superseded
candidate whose job is gone is marked failed (abandoned). The decision is the plan's
(`plan.degraded`, `plan.abandoned`); this module acts on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from kappa_orch.engine.protocol import ACTIVE_JOB_STATES
from kappa_orch.errors import KappaError, OperationRefused
from kappa_orch.lifecycle.deploy import DeployResult, deploy, ensure_dead_letter_topic
from kappa_orch.lifecycle.deploy_checks import SLOT_WAIT_S, wait_for_slot
from kappa_orch.lifecycle.orphans import Orphan, adopt, settle_orphans
from kappa_orch.lifecycle.restore import pipeline_of_version, stop_keeping_state
from kappa_orch.lifecycle.services import Services
from kappa_orch.lifecycle.swap import SwapRequest, swap
from kappa_orch.plan.decide import abandoned, degraded
from kappa_orch.plan.replay_checks import replaced_logs
from kappa_orch.registry import claims, transitions
from kappa_orch.registry import store as registry
from kappa_orch.registry.serving import missing_aliases, missing_version_tables
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.model import LoadedPipeline

# the claim a repair holds: one repair per pipeline at a time, beside a reprocess's claim
# (a repair of the live version must not wait for a candidate's catch-up)
REPAIR_CLAIM = "repair:{}"


def accept_replaced_log(
    services: Services, pipeline: str, version: int, *, by: str, reason: str
) -> list[dict[str, object]]:
    """A person keeps the version's table although a source topic was deleted and created
    again under its job: the new topic ids become the version's, and who accepted what and
    why is recorded with it. Returns what was accepted; refuses a missing topic."""
    if not reason.strip():
        raise OperationRefused(
            "accepting a replaced log needs a reason", 'add --reason "why the table is right"'
        )
    with services.warehouse.begin() as conn:
        registry.lock_pipeline(conn, pipeline)
        row = next((r for r in registry.pipeline_versions(conn, pipeline) if r.version == version), None)
        if row is None:
            raise OperationRefused(
                f"{pipeline} has no version {version}", f"see: kappa-orch history {pipeline}"
            )
        ids = services.kafka.topic_ids((row.source_topic_ids or {}).keys())
        replaced = replaced_logs(row, ids)
        if not replaced:
            raise OperationRefused(
                f"no source topic of {pipeline} v{version} was replaced since its job started",
                "nothing to accept; `kappa-orch status` shows why a version is degraded",
            )
        gone = [r["topic"] for r in replaced if r["now"] is None]
        if gone:
            raise OperationRefused(
                f"source topic(s) {gone} of {pipeline} v{version} do not exist",
                "create them first: kappa-orch topics --create",
            )
        entry = {"at": datetime.now(UTC).isoformat(), "by": by, "reason": reason, "replaced": replaced}
        transitions.record(
            conn,
            pipeline,
            version,
            source_topic_ids={**(row.source_topic_ids or {}), **{r["topic"]: r["now"] for r in replaced}},
            logs_accepted=[*(row.logs_accepted or []), entry],
        )
    return replaced


def _adopt(warehouse: WarehouseResource, orphan: Orphan) -> None:
    with warehouse.begin() as conn:
        registry.lock_pipeline(conn, orphan.pipeline)
        adopt(conn, orphan)


def _mark_failed(warehouse: WarehouseResource, pipeline: str, version: int, error: str) -> None:
    with warehouse.begin() as conn:
        registry.lock_pipeline(conn, pipeline)
        transitions.mark_failed(conn, pipeline, version, error)


@dataclass(frozen=True)
class _Seen:
    """What repair read of the pipeline before repairing its versions one by one."""

    rows: list[registry.VersionRow]
    live: int | None
    claimed: bool  # a reprocess in flight holds the pipeline's claim
    missing: frozenset[tuple[str, int]]  # versions whose table is gone


def _retire_dropped(
    row: registry.VersionRow, problem: str, seen: _Seen, services: Services, result: RepairResult
) -> None:
    """A version whose table was dropped by hand: a replay into a new table would serve (or
    roll back to) partial rows until it caught up, so it is not repaired in place. A ready
    one is marked failed; the live one is left, with the fix."""
    name, flink, log = row.pipeline, services.engine, services.log
    if row.version == seen.live:
        retained = [f"v{r.version}" for r in seen.rows if r.state == registry.READY]
        fix = (
            f"roll back to a retained version ({', '.join(retained)}: kappa-orch rollback {name} --to N), "
            f"then retire v{row.version} and reprocess"
            if retained
            else "change the spec (a new fingerprint) and reprocess"
        )
        result.failed[row.version] = (
            f"{problem}: the alias cannot serve it and a replay in place would serve partial rows; {fix}"
        )
        log(f"{name}: {result.failed[row.version]}")
        return
    if row.flink_job_id and flink.job_state(row.flink_job_id) in ACTIVE_JOB_STATES:
        flink.cancel(row.flink_job_id)
    _mark_failed(services.warehouse, name, row.version, f"{problem}: it can no longer serve")
    log(f"{name}: {problem}; marked failed (a rollback to it is no longer possible)")
    result.abandoned.append(row.version)


@dataclass
class RepairResult:
    redeployed: dict[int, DeployResult] = field(default_factory=dict)
    abandoned: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)  # version -> why it could not be repaired
    alias_rebuilt: bool = False  # the alias view was missing and was rebuilt
    cancelled: list[str] = field(default_factory=list)  # jobs the registry did not know


def repair(
    pipeline: LoadedPipeline,
    services: Services,
    *,
    owner: str,
    versions: list[int] | None = None,
    provenance: tuple[str | None, str | None] = (None, None),
) -> RepairResult:
    """Cancel the pipeline's jobs the registry does not know, redeploy its degraded versions
    (all, or those in `versions`) and mark its abandoned candidates failed. Idempotent: a
    healthy version is left alone. `provenance`: the run and the git commit recorded with
    the swap that rebuilds a lost alias."""
    name, warehouse, log = pipeline.name, services.warehouse, services.log
    result = RepairResult()
    claim = REPAIR_CLAIM.format(name)
    claims.acquire(warehouse, claim, claims.Claimant(owner), fingerprint=pipeline.fingerprint, log=log)
    try:
        with registry.session(warehouse) as conn:
            rows = registry.pipeline_versions(conn, name)
            live = registry.live_versions(conn).get(name)
            missing = missing_version_tables(conn, [pipeline], rows)
        # jobs kappa_orch started that the registry does not know (a run killed between
        # submitting and recording) hold slots and write into version tables
        orphans = settle_orphans(name, rows, services, adopt=lambda o: _adopt(warehouse, o))
        result.cancelled += [o.job.job_id for o in orphans if not o.adoptable]
        if any(o.adoptable for o in orphans):
            with registry.session(warehouse) as conn:
                rows = registry.pipeline_versions(conn, name)
        # a reprocess in flight holds the pipeline's claim: its candidate is not abandoned
        claimed = name in claims.held_claims(warehouse)
        if any(r.state in registry.RUNNING_STATES for r in rows):
            ensure_dead_letter_topic(pipeline, kafka=services.kafka, log=log)
        seen = _Seen(rows, live, claimed, missing)
        for row in rows:
            if versions is None or row.version in versions:
                _repair_version(pipeline, row, seen, services, result)
        if live is not None and live not in result.failed:
            with warehouse.begin() as conn:
                no_alias = missing_aliases(conn, [pipeline], {name: live})
            if no_alias:
                run_id, git_commit = provenance
                request = SwapRequest(
                    to_version=live, reason="repair", run_id=run_id, git_commit=git_commit, check_job=True
                )
                swap(pipeline, services, request)
                result.alias_rebuilt = True
    finally:
        claims.release(warehouse, pipeline=claim, owner=owner)
    return result


def _repair_version(
    pipeline: LoadedPipeline, row: registry.VersionRow, seen: _Seen, services: Services, result: RepairResult
) -> None:
    """One version: an abandoned candidate fails; a degraded version is redeployed (or, its
    table dropped by hand, retired); a healthy one is left alone."""
    name, flink, log = pipeline.name, services.engine, services.log
    live, claimed, missing = seen.live, seen.claimed, seen.missing
    state = flink.job_state(row.flink_job_id) if row.flink_job_id else "UNKNOWN"
    if abandoned(row, state, pipeline.fingerprint, live, claimed=claimed):
        resumes = stop_keeping_state(name, row, "abandoned: superseded by the spec", services)
        again = f"; a reprocess of its fingerprint resumes it from {resumes}" if resumes else ""
        _mark_failed(
            services.warehouse,
            name,
            row.version,
            f"abandoned: its Flink job {row.flink_job_id} was {state} and the spec has moved on, "
            f"so nobody will finish its catch-up{again}",
        )
        log(f"{name}: v{row.version} abandoned (job {state}, superseded by the spec)")
        result.abandoned.append(row.version)
        return
    problem = degraded(row, state, (name, row.version) not in missing)
    if problem is None:
        return
    if (name, row.version) in missing:
        _retire_dropped(row, problem, seen, services, result)
        return
    log(f"{name}: {problem}; redeploying it")
    wait_for_slot(flink, wait_s=SLOT_WAIT_S, log=lambda line: log(f"{name}: {line}"))
    try:
        result.redeployed[row.version] = deploy(
            pipeline_of_version(row, pipeline), services, holds_claim=True
        )
    except KappaError as exc:
        result.failed[row.version] = exc.problem
        log(f"{name}: v{row.version} could not be repaired: {exc}")
