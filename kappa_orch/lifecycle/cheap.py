"""A new version started from the live version's savepoint instead of a replay (issue 26,
point 3): the cheap path of a change the compiled plans prove safe (lifecycle.change).

Taken when the change's class is `same_plan`, `stateless_forward` or `state_compatible`.
When every column of the candidate copies a live column (a rename, a reorder, a column
left out) the copy is exactly the candidate's own projection of the live rows, made in the
warehouse; a column computed anew or a filter after the shared operators is applied to
the live rows by a bounded Flink job whose plan must apply exactly the candidate's
expressions (lifecycle.derive; compiled and checked before anything stops). Before
anything stops, the pre-flight compares the live plan with the candidate's as it will
run: every stateful operator of the live plan must be one of the candidate's (same id:
same computation over the same input), except kappa_orch's own per-version counters,
whose counts are carried over instead (registry.carried).

The fence:

1. the live job stops with a savepoint (not drained: open windows stay open); its table
   then holds exactly the rows for the input up to the savepoint's offsets, because its
   sinks flush at every checkpoint and savepoint;
2. in one transaction, the live table's rows are copied into the candidate's table (or,
   to be derived by Flink, into a staging table) and the live version's input counts
   carried over for it;
3. the live job starts again from the savepoint (the alias keeps serving its table; its
   rows pause for the few seconds of the fence); a derivation job then fills the
   candidate's table from the staging table, to its end;
4. a pipeline without state: the newest records before the fence are replayed through
   the candidate's SQL and must give the derived rows (lifecycle.slice_check);
5. the candidate's job starts from the same savepoint, its state and source offsets
   restored (strictly, but for the counters the pre-flight allowed); both read on.

Anything that fails before the candidate's job starts leaves its table and counts empty
and the caller replays (the live job is started again in every case). What the cheap path
made is verified before any reader sees it (gate.derive_parity_outcome).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import insert, select

from kappa_orch.engine.protocol import (
    ACTIVE_JOB_STATES,
    TERMINAL_STATES,
    CompiledJob,
    JobDefinition,
)
from kappa_orch.errors import KappaError
from kappa_orch.lifecycle import derive, slice_check
from kappa_orch.lifecycle.change import change_of, live_columns, spec_columns
from kappa_orch.lifecycle.restore import pipeline_of_version
from kappa_orch.lifecycle.services import Services
from kappa_orch.plan.change import Change
from kappa_orch.registry import carried, transitions
from kappa_orch.registry import store as registry
from kappa_orch.registry.serving import version_table
from kappa_orch.spec.model import LoadedPipeline

CHEAP_KINDS = frozenset({"same_plan", "stateless_forward", "state_compatible"})
# the session options that let a restore leave state no operator claims (only ever set
# after the pre-flight found that state to be kappa_orch's own counters): Flink 2.2's key
# and its deprecated fallback
IGNORE_UNCLAIMED = (
    "execution.state-recovery.ignore-unclaimed-state",
    "execution.savepoint.ignore-unclaimed-state",
)
# how long a restored job may take to run (Flink maps the savepoint's state as it starts)
START_WAIT_S = 90.0
# the table of live rows a derivation job reads: the candidate's table's name and this
STAGING_SUFFIX = "__live_rows"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Candidate:
    """The new version a deploy starts: its number, its job, the plan it runs, and the
    change against the live version when the caller classified it already."""

    version: int
    job: JobDefinition
    compiled: CompiledJob
    change: Change | None = None


@dataclass(frozen=True)
class Route:
    """The live version a candidate starts from, and the change that allows it."""

    live: registry.VersionRow
    change: Change


def cheap_route(pipeline: LoadedPipeline, services: Services, change: Change | None = None) -> Route | None:
    """The route of the spec's change from the live version, or None (it replays; the
    log says why). `change`: the change as the caller classified it already."""
    name, log = pipeline.name, services.log
    with registry.session(services.warehouse) as conn:
        live_version = registry.live_versions(conn).get(name)
        rows = registry.pipeline_versions(conn, name)
    live = next((r for r in rows if r.version == live_version), None)
    if live is None or live.state != registry.LIVE or not live.flink_job_id:
        return None
    if services.engine.job_state(live.flink_job_id) not in ACTIVE_JOB_STATES:
        log(f"{name}: the live v{live.version}'s job is not running: the candidate replays the log")
        return None
    if change is None:
        change = change_of(pipeline, live, services, None)
    if change.kind not in CHEAP_KINDS:
        reason = change.reasons[0] if change.reasons else "no reason recorded"
        log(
            f"{name}: change against v{live.version} is {change.kind} ({reason}): "
            "the candidate replays the log"
        )
        return None
    return Route(live, change)


def preflight(
    route: Route, pipeline: LoadedPipeline, compiled: CompiledJob, services: Services
) -> tuple[str | None, bool]:
    """Why the candidate's job, as it will run, cannot restore the live job's savepoint
    (None: it can), and whether the restore must leave kappa_orch's counters behind."""
    with registry.session(services.warehouse) as conn:
        stored = registry.version_plan(conn, pipeline.name, route.live.version)
    columns = live_columns(route.live)
    if stored is None or columns is None:
        return f"v{route.live.version} keeps no compiled plan or columns", False
    names = (columns.names, spec_columns(pipeline).names)
    diff = services.engine.compare_plans(stored.document, compiled.document, names)
    if diff.unclaimed:
        return f"the candidate has no operator for the live state of {diff.unclaimed[0]}", False
    if diff.new_state:
        return f"the candidate's {diff.new_state[0]} has no state in the live job", False
    return None, bool(diff.unclaimed_bookkeeping)


def start_cheaply(
    pipeline: LoadedPipeline,
    candidate: Candidate,
    services: Services,
    restart_live: Callable[[LoadedPipeline], object],
) -> str | None:
    """The fence (see the module's docstring) for the candidate, whose table exists; its
    job id, or None when the cheap path is not taken (the caller replays). `restart_live`
    deploys a version's pipeline again (its job resumes from its savepoint)."""
    name, log, version = pipeline.name, services.log, candidate.version
    try:
        route = cheap_route(pipeline, services, candidate.change)
        if route is None:
            return None
        refused, leaves_counters = preflight(route, pipeline, candidate.compiled, services)
    except KappaError as exc:  # what cannot be classified replays: never a reason not to deploy
        log(f"{name}: the change could not be classified ({exc.problem}): the candidate replays the log")
        return None
    live = route.live
    if refused:
        log(f"{name}: no cheap start from v{live.version}: {refused}; the candidate replays the log")
        return None
    live_pipeline = pipeline_of_version(live, pipeline)
    derivation = _derivation(pipeline, live_pipeline, route, version, services)
    if isinstance(derivation, str):
        log(f"{name}: no cheap start from v{live.version}: {derivation}; the candidate replays the log")
        return None
    savepoint = _fence(name, live, services)
    try:
        if savepoint is None:
            if derivation is not None:
                derive.drop_staging(derivation, live_pipeline, services)
            return None
        copied = _copy_rows(pipeline, live_pipeline, route, (version, derivation), services)
        log(f"{name}: v{version} starts from v{live.version}'s savepoint {savepoint}; {copied:,} rows copied")
    finally:
        if services.engine.job_state(live.flink_job_id or "") not in ACTIVE_JOB_STATES:
            restart_live(live_pipeline)  # the live version goes on from its savepoint
    made, sliced = _rows_made((pipeline, live_pipeline), route, (version, derivation), services)
    if not made:
        return None
    job = candidate.job
    if leaves_counters:
        job = replace(job, configuration={**job.configuration, **dict.fromkeys(IGNORE_UNCLAIMED, "true")})
    log(
        f"{name}: v{version} restores v{live.version}'s state"
        + (" (its counters' left behind)" if leaves_counters else "")
    )
    job_id = _restored(name, replace(candidate, job=job), savepoint, services)
    if job_id is None:
        forget(pipeline, version, services)
        return None
    _record_route(name, version, route, services, savepoint=savepoint, sliced=sliced)
    return job_id


def _fence(name: str, live: registry.VersionRow, services: Services) -> str | None:
    """Stop the live job with a savepoint and record it (its redeploy resumes from it)."""
    try:
        path = services.engine.stop_with_savepoint(live.flink_job_id or "")
    except KappaError as exc:
        services.log(
            f"{name}: v{live.version}'s job took no savepoint ({exc.problem}): the candidate replays"
        )
        return None
    saved = {"path": path, "checkpoint_id": registry.STOPPED_WITH_SAVEPOINT, "completed_at_ms": now_ms()}
    with services.warehouse.begin() as conn:
        registry.record_checkpoint(conn, name, live.version, live.flink_job_id or "", saved)
    return path


def _restored(name: str, candidate: Candidate, savepoint: str, services: Services) -> str | None:
    """The candidate's job started from the savepoint and running (Flink refuses state it
    cannot map when the job starts); None when it did not start (its job is cancelled)."""
    engine, log, version = services.engine, services.log, candidate.version
    try:
        job_id = engine.submit_plan(candidate.job, candidate.compiled.document, savepoint_path=savepoint)
    except KappaError as exc:
        log(f"{name}: v{version}'s job did not start from the savepoint ({exc.problem}); it replays the log")
        return None
    deadline = time.monotonic() + START_WAIT_S
    state = engine.job_state(job_id)
    while state not in ("RUNNING", *TERMINAL_STATES) and time.monotonic() < deadline:
        time.sleep(1.0)
        state = engine.job_state(job_id)
    if state == "RUNNING" and not engine.job_root_cause(job_id):
        return job_id
    cause = engine.job_root_cause(job_id) or f"it was {state} after {START_WAIT_S:.0f}s"
    log(f"{name}: v{version}'s job did not restore the savepoint ({cause}); it replays the log")
    with contextlib.suppress(KappaError):
        engine.cancel(job_id)
    return None


def _derivation(
    pipeline: LoadedPipeline,
    live_pipeline: LoadedPipeline,
    route: Route,
    version: int,
    services: Services,
) -> derive.Derivation | str | None:
    """The Flink job deriving the candidate's rows when a column is computed or rows are
    filtered (None: a copy in the warehouse does), compiled and checked; or why not."""
    started = _started(route)
    if not derive.through_flink(started):
        return None
    target = pipeline.spec.target.version_table(version)
    tables = (f"{target}{STAGING_SUFFIX}", target)
    try:
        return derive.prepare((pipeline, live_pipeline), tables, started, services)
    except KappaError as exc:
        return f"the derivation could not be prepared ({exc.problem})"


def _derived(
    derivation: derive.Derivation, pipeline: LoadedPipeline, live_pipeline: LoadedPipeline, services: Services
) -> bool:
    """Run the derivation (the staging table goes after it); False when it failed."""
    try:
        rows = derive.run(derivation, pipeline, services)
    except KappaError as exc:
        services.log(f"{pipeline.name}: the derivation failed ({exc.problem}); the candidate replays the log")
        return False
    finally:
        derive.drop_staging(derivation, live_pipeline, services)
    services.log(f"{pipeline.name}: {rows:,} rows derived by Flink through the candidate's expressions")
    return True


def _rows_made(
    pipelines: tuple[LoadedPipeline, LoadedPipeline],
    route: Route,
    candidate: tuple[int, derive.Derivation | None],
    services: Services,
) -> tuple[bool, dict[str, Any] | None]:
    """After the fence's copy: the derivation run (when Flink derives), then the slice
    check (a pipeline without state); whether the candidate's rows are made and checked,
    and the slice check's record. Not made: its table and counts are emptied (it replays)."""
    (pipeline, live_pipeline), (version, derivation) = pipelines, candidate
    if derivation is not None and not _derived(derivation, pipeline, live_pipeline, services):
        forget(pipeline, version, services)
        return False, None
    sliced = None
    if route.change.kind == "stateless_forward":  # without state: the slice check
        sliced = slice_check.checked(pipeline, version, services)
    if sliced is not None and not sliced.get("passed"):
        forget(pipeline, version, services)
        why = f"slice_check: {sliced.get('summary') or sliced.get('error')}"
        _record_route(pipeline.name, version, route, services, sliced=sliced, fell_back=why)
        return False, sliced
    return True, sliced


def _copy_rows(
    pipeline: LoadedPipeline,
    live_pipeline: LoadedPipeline,
    route: Route,
    candidate: tuple[int, derive.Derivation | None],
    services: Services,
) -> int:
    """The live table's rows into the candidate's, through the derivation (candidate
    column <- the live column it copies), or into the staging table a derivation job reads,
    and the live counts carried: one transaction."""
    live = route.live
    version, derivation = candidate
    source = version_table(live_pipeline.spec, live.physical_table)
    target = version_table(pipeline.spec, pipeline.spec.target.version_table(version))
    mapping = {c: s for c, s in (route.change.derivation or {}).items() if s is not None}
    with services.warehouse.begin() as conn:
        conn.execute(target.delete())  # a deploy taken over may have left rows
        if derivation is not None:
            copied = derive.fill(conn, derivation, live_pipeline, live.physical_table)
        else:
            done = conn.execute(
                insert(target).from_select(list(mapping), select(*[source.c[s] for s in mapping.values()]))
            )
            copied = int(done.rowcount or 0)
        carried.carry_counts(conn, pipeline.name, live.version, version)
    return copied


def _started(route: Route) -> dict[str, Any]:
    """How the candidate's rows derive from the live rows, as its definition records it."""
    change = route.change
    return {
        "derivation": change.derivation,
        "expressions": change.expressions,
        "conditions": change.conditions,
    }


def forget(pipeline: LoadedPipeline, version: int, services: Services) -> None:
    """Empty the candidate's table and counts: it replays from the log's start."""
    table = version_table(pipeline.spec, pipeline.spec.target.version_table(version))
    with services.warehouse.begin() as conn:
        conn.execute(table.delete())
        carried.forget_counts(conn, pipeline.name, version)


def _record_route(
    name: str,
    version: int,
    route: Route,
    services: Services,
    *,
    savepoint: str | None = None,
    sliced: dict[str, Any] | None = None,
    fell_back: str | None = None,
) -> None:
    """The candidate's definition says how it started (and the slice check's outcome; or
    why it replays instead, `fell_back`): the gate verifies it by this."""
    with registry.session(services.warehouse) as conn:
        row = next(r for r in registry.pipeline_versions(conn, name) if r.version == version)
        started = {
            "kind": route.change.kind,
            "from_version": route.live.version,
            "savepoint": savepoint,
            **_started(route),
            "reasons": route.change.reasons,
            **({"slice_check": sliced} if sliced is not None else {}),
            **({"fell_back": fell_back} if fell_back else {}),
        }
        transitions.record(conn, name, version, definition={**(row.definition or {}), "cheap_start": started})


# checks whose failure after a cheap start means the start, not the data, may be wrong
VERIFYING = frozenset({"derive_parity", "input_balance", "complete_history", "unique_primary_key"})


def unverified(row: registry.VersionRow, failed: dict[str, str]) -> str | None:
    """Why a version started cheaply is not verified (`failed`: the gate's failed checks
    and their summaries), or None (it was not started cheaply, or nothing failed that says
    the start was wrong)."""
    started = (row.definition or {}).get("cheap_start")
    if not started or started.get("fell_back"):
        return None
    wrong = [f"{name}: {summary}" for name, summary in failed.items() if name in VERIFYING]
    return "; ".join(wrong) or None
