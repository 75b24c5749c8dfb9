"""The Kappa reprocess, step by step; every step reads its state from the registry, so a
run killed anywhere is finished by running again.

1. candidate (here): deploy the current fingerprint (table__vN, own job and consumer group,
   from the earliest offsets), await catch-up, run the gate (under the pipeline's claim);
2. swap (kappa_orch.swap): point the alias at the candidate in one transaction and record the swap;
3. retire (kappa_orch.swap; later, never by the swap): stop the old job and drop its table after the grace.
"""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from kappa_orch.errors import KappaError, OperationRefused
from kappa_orch.lifecycle.alerting import Finding, tell
from kappa_orch.lifecycle.approval import approved_change
from kappa_orch.lifecycle.catch_up import Awaited, CatchUpResult, Progress, await_catch_up
from kappa_orch.lifecycle.cheap import unverified
from kappa_orch.lifecycle.deploy import DeployResult, deploy, replay_from_start
from kappa_orch.lifecycle.derive_parity import DERIVE_PARITY, derive_parity
from kappa_orch.lifecycle.gate import (
    NO_LATE_RECORDS,
    Outcome,
    accepted,
    check_acceptance,
    complete_history_outcome,
    expectations_outcome,
    failed_candidate_fix,
    input_balance_outcome,
    late_records,
    late_records_outcome,
    parity_outcome,
    unique_key_outcome,
)
from kappa_orch.lifecycle.reconfigure import reconfigure
from kappa_orch.lifecycle.restore import pipeline_of_version, stop_keeping_state
from kappa_orch.lifecycle.row_diff import failing_rows
from kappa_orch.lifecycle.services import Services
from kappa_orch.lifecycle.swap import join_alias
from kappa_orch.lifecycle.swap import version_row as _row
from kappa_orch.lineage import events as lineage_events
from kappa_orch.lineage import ops as lineage_ops
from kappa_orch.plan.change import Change
from kappa_orch.progress import Log
from kappa_orch.registry import claims, transitions
from kappa_orch.registry import store as registry
from kappa_orch.spec.model import LoadedPipeline

T = TypeVar("T")

# how long the gate waits for a job's late-record counters. Flink's REST metric store
# stays frozen after a TaskManager died until its pending fetch times out (web.timeout,
# 30 s on the local stack) and the dead TaskManager is no longer listed (heartbeat
# timeout, 50 s): up to about 80 s. Without the counters the gate fails closed.
LATE_METRICS_WAIT_S = 120.0


@dataclass(frozen=True)
class CandidateReport:
    deployed: DeployResult
    version: registry.VersionRow
    catch_up: CatchUpResult | None
    outcomes: list[Outcome]
    change: Change | None = None  # the change against the live version (lifecycle.change)

    @property
    def passed(self) -> bool:
        return all(o.lets_through for o in self.outcomes)


@dataclass(frozen=True)
class Acceptance:
    """Non-structural checks an operator accepts when they fail, why, and who."""

    checks: Sequence[str] = ()
    reason: str | None = None
    by: str | None = None
    # the plan id of a change that waits for approval (lifecycle.approval), approved by `by`
    approve: str | None = None
    # replay the log into a new version even when the spec's fingerprint has one (a
    # rebuild: `reprocess --force`), recorded in its definition with `by` and `reason`
    force: bool = False


def prepare_candidate(
    pipeline: LoadedPipeline,
    services: Services,
    claimant: claims.Claimant,
    *,
    acceptance: Acceptance = Acceptance(),
    poll_s: float = 2.0,
) -> CandidateReport:
    """Deploy (unless running), await catch-up and gate the current fingerprint's version.

    `acceptance`: failed checks accepted (with a reason, recorded with who); a candidate
    that failed before is gated again. Told to OpenLineage as a `<pipeline>.reprocess`
    run: START, COMPLETE or FAIL."""
    spec, warehouse = pipeline.spec, services.warehouse
    check_acceptance(acceptance.checks, acceptance.reason)
    claims.acquire(warehouse, spec.name, claimant, fingerprint=pipeline.fingerprint, log=services.log)
    run_id = lineage_events.run_uuid()
    services.lineage.reprocess(pipeline, run_id, "START")
    keep_claim = False
    try:
        by = acceptance.by or getpass.getuser()
        report = _candidate(pipeline, services, claimant.owner, replace(acceptance, by=by), poll_s)
        # a candidate that passed keeps the claim for its swap (the run's alias step takes
        # it over; a dead run's is taken over): a rollback in between would be undone
        keep_claim = report.passed
    except BaseException as exc:
        services.lineage.reprocess(pipeline, run_id, "FAIL", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if not keep_claim:
            claims.release(warehouse, pipeline=spec.name, owner=claimant.owner)
    failed = "; ".join(f"{o.name}: {o.summary}" for o in report.outcomes if not o.lets_through)
    state, error = ("COMPLETE", None) if report.passed else ("FAIL", f"the gate failed: {failed}")
    services.lineage.reprocess(pipeline, run_id, state, report=report, error=error)
    return report


def _candidate(
    pipeline: LoadedPipeline, services: Services, owner: str, acceptance: Acceptance, poll_s: float
) -> CandidateReport:
    """prepare_candidate's work, under the pipeline's claim."""
    spec, warehouse = pipeline.spec, services.warehouse
    if acceptance.force:
        deployed = _forced(pipeline, services, acceptance)
        change = None
    else:
        # the live version serves this fingerprint with other job settings: a restart, no version
        reconfigure(pipeline, services)
        change = approved_change(pipeline, services, approve=acceptance.approve, by=acceptance.by or "")
        deployed = deploy(pipeline, services, holds_claim=True, change=change)
    row = _row(warehouse, spec.name, deployed.plan.version)
    # live or ready (gated by an earlier run): report the checks, change nothing
    settled = row.state in (registry.LIVE, registry.READY)
    result = None
    if not settled:
        result = _catch_up(pipeline, row, services, owner=owner, poll_s=poll_s)
    gated = run_gate(pipeline, row, services)
    why = unverified(row, {o.name: o.summary for o in gated if not o.passed})
    if why and not settled:
        # a cheap start the gate could not verify: the same version replays the log instead
        replay_from_start(pipeline, row, services, why)
        row = _row(warehouse, spec.name, row.version)
        result = _catch_up(pipeline, row, services, owner=owner, poll_s=poll_s)
        gated = run_gate(pipeline, row, services)
    outcomes = accepted(gated, acceptance.checks, acceptance.by or "", acceptance.reason)
    _log_outcomes(spec.name, outcomes, services.log)
    if not settled:
        _record_gate(pipeline, row, outcomes, services)
    return CandidateReport(deployed, _row(warehouse, spec.name, row.version), result, outcomes, change)


def _forced(pipeline: LoadedPipeline, services: Services, acceptance: Acceptance) -> DeployResult:
    """A full replay a person asked for: a new version, whatever the fingerprint has, its
    definition saying who asked and why."""
    if not acceptance.reason:
        raise OperationRefused(
            "a forced reprocess replays the whole log into a new version and needs a reason",
            f'kappa-orch reprocess {pipeline.name} --force --reason "<why>" (or the run config\'s `reason`)',
        )
    deployed = deploy(pipeline, services, holds_claim=True, force=True)
    with services.warehouse.begin() as conn:
        row = next(
            r for r in registry.pipeline_versions(conn, pipeline.name) if r.version == deployed.plan.version
        )
        forced = {"by": acceptance.by, "reason": acceptance.reason}
        transitions.record(
            conn, pipeline.name, row.version, definition={**(row.definition or {}), "forced": forced}
        )
    services.log(
        f"{pipeline.name}: v{row.version} replays the log, as {acceptance.by} asked: {acceptance.reason}"
    )
    return deployed


def _progress(pipeline: LoadedPipeline, row: registry.VersionRow, lineage: lineage_ops.Lineage) -> Progress:
    """Catch-up progress, told to OpenLineage as RUNNING events of the version's Flink job."""

    def told(lag: int, pct: float, events_per_s: float, eta_s: float | None) -> None:
        reading = lineage_ops.CatchUpReading(lag, pct, events_per_s, eta_s)
        lineage.catching_up(pipeline, row.version, row.flink_job_id or "", reading)

    return told


def _catch_up(
    pipeline: LoadedPipeline, row: registry.VersionRow, services: Services, *, owner: str, poll_s: float
) -> CatchUpResult:
    """catching_up until the job has replayed the log (and checkpointed), then checking;
    the pipeline's claim is kept alive meanwhile (it is `owner`'s)."""
    spec, warehouse = pipeline.spec, services.warehouse
    with warehouse.begin() as conn:
        transitions.mark_catching_up(conn, spec.name, row.version)
    result = await_catch_up(
        Awaited(spec, row.flink_job_id or "", row.group_id),
        services,
        heartbeat=lambda: claims.heartbeat(warehouse, pipeline=spec.name, owner=owner),
        poll_s=poll_s,
        progress=_progress(pipeline, row, services.lineage),
    )
    # the measured catch-up, kept with the version's definition: plans estimate a replay by it
    measured = {"seconds": round(result.seconds, 1), "events_per_s": round(result.events_per_s, 1)}
    definition = {**(row.definition or {}), "catch_up": {**measured, "backlog": result.backlog}}
    with warehouse.begin() as conn:
        transitions.mark_caught_up(conn, spec.name, row.version, definition=definition)
    return result


def _log_outcomes(name: str, outcomes: list[Outcome], log: Log) -> None:
    """Each check's verdict; under a failed one, the rows it names (by primary key)."""
    for outcome in outcomes:
        verdict = "passed" if outcome.passed else "FAILED"
        if not outcome.passed and outcome.accepted:
            verdict = f"FAILED, accepted by {outcome.accepted}"
        log(f"{name}: check {outcome.name}: {verdict} ({outcome.summary})")
        for line in [] if outcome.passed else failing_rows(outcome.metadata):
            log(f"{name}:   {line}")


def _record_gate(
    pipeline: LoadedPipeline, row: registry.VersionRow, outcomes: list[Outcome], services: Services
) -> None:
    """ready (and a member of the alias view) or failed, with the checks' results. A failed
    candidate's job is stopped with a savepoint: it holds no slot and writes nothing more,
    and a reprocess of the same fingerprint (after a gate change) resumes it from there."""
    spec, warehouse, log = pipeline.spec, services.warehouse, services.log
    passed = all(o.lets_through for o in outcomes)
    failures = "; ".join(f"{o.name}: {o.summary}" for o in outcomes if not o.lets_through)
    with warehouse.begin() as conn:
        results = {
            o.name: {"passed": o.passed, "summary": o.summary, "accepted": o.accepted, **_rows(o)}
            for o in outcomes
        }
        verdict = transitions.GateVerdict(results, _late_records(outcomes), failures)
        transitions.mark_gated(conn, spec.name, row.version, verdict)
    _alert_gate(pipeline, row, (passed, failures), services)
    if not passed:
        stop_keeping_state(spec.name, row, "it failed its checks", services)
        log(
            f"{spec.name}: v{row.version} failed its checks; the alias stays, its table is kept for "
            f"inspection. {failed_candidate_fix(spec.name)}"
        )
        return
    log(f"{spec.name}: v{row.version} is ready for the swap")
    join_alias(pipeline, row.version, warehouse=warehouse, log=log)


def _alert_gate(
    pipeline: LoadedPipeline, row: registry.VersionRow, verdict: tuple[bool, str], services: Services
) -> None:
    """A failed gate is sent to the alert receivers; a passing one resolves it. An alert that
    cannot be sent is told to the log, never a reason for the gate to fail."""
    if services.alerts is None:
        return
    passed, failures = verdict
    summary = f"v{row.version} passed its gate" if passed else f"v{row.version} failed its gate: {failures}"
    try:
        tell(
            services.warehouse,
            services.alerts,
            [Finding(pipeline.name, "gate", passed, summary)],
            services.log,
        )
    except KappaError as exc:
        services.log(f"{pipeline.name}: the gate's alert was not sent: {exc.problem}")


def _rows(outcome: Outcome) -> dict[str, list[str]]:
    """A failed check's rows, as the registry keeps them for `status` and `history`."""
    rows = [] if outcome.passed else failing_rows(outcome.metadata)
    return {"rows": rows} if rows else {}


def _late_records(outcomes: list[Outcome]) -> dict[str, int] | None:
    late = next((o for o in outcomes if o.name == NO_LATE_RECORDS), None)
    return None if late is None else late.metadata.get("by_operator")


def run_gate(pipeline: LoadedPipeline, row: registry.VersionRow, services: Services) -> list[Outcome]:
    spec, warehouse = pipeline.spec, services.warehouse
    with warehouse.begin() as conn:
        live = registry.live_versions(conn).get(spec.name)
        live_row = next((r for r in registry.pipeline_versions(conn, spec.name) if r.version == live), None)
        unique = unique_key_outcome(conn, spec, row.physical_table)
        parity = parity_outcome(conn, spec, row.physical_table, live_row.physical_table if live_row else None)
        history = complete_history_outcome(conn, spec, row.version, live)
        balance = input_balance_outcome(conn, spec, row.version)
        routed = sum(c.late for c in registry.input_counts_of(conn, spec.name, row.version))
    expectations = expectations_outcome(warehouse.checks_url, spec, row.physical_table)
    dropped = services.engine.known_late_records(row.flink_job_id, metrics_wait_s=LATE_METRICS_WAIT_S)
    late = late_records_outcome(spec, late_records(routed, dropped))
    return [expectations, unique, parity, history, balance, late, _derive_parity(pipeline, row, services)]


def _derive_parity(pipeline: LoadedPipeline, row: registry.VersionRow, services: Services) -> Outcome:
    """derive_parity of a version started cheaply, against the version it started from."""
    started = (row.definition or {}).get("cheap_start") or {}
    live = pipeline
    if started and row.state in (registry.LIVE, registry.READY):
        return Outcome(DERIVE_PARITY, True, "verified when it was gated (started cheaply)", {})
    if started.get("from_version") is not None:
        source = _row(services.warehouse, pipeline.name, int(started["from_version"]))
        live = pipeline_of_version(source, pipeline)
    passed, summary, metadata = derive_parity(services, pipeline, row, live)
    return Outcome(DERIVE_PARITY, passed, summary, metadata)
