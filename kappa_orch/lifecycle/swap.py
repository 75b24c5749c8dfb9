"""The swap, the rollback and the retire: the alias moves to a gated version in one
transaction (readers see the old or the new version, never an error), and replaced
versions are stopped and dropped after their grace period."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from sqlalchemy import Connection

from kappa_orch.engine.protocol import ACTIVE_JOB_STATES, StreamEngine
from kappa_orch.errors import GateFailed, OperationRefused
from kappa_orch.lifecycle.services import Services
from kappa_orch.progress import Log
from kappa_orch.registry import claims, transitions
from kappa_orch.registry import store as registry
from kappa_orch.registry.serving import alias_members, build_alias, drop_version_table, existing_tables
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.model import LoadedPipeline, PipelineSpec

T = TypeVar("T")


def version_row(warehouse: WarehouseResource, pipeline: str, version: int) -> registry.VersionRow:
    """One version's registry row."""
    with warehouse.begin() as conn:
        return next(r for r in registry.pipeline_versions(conn, pipeline) if r.version == version)


@dataclass(frozen=True)
class SwapResult:
    swapped: bool
    from_version: int | None
    to_version: int
    physical_table: str
    rows: int


# the swap waits at most this long for the alias view's lock before it lets go and tries
# again (a DDL waiting for its lock queues every new reader behind it); after
# SWAP_PATIENCE_S of such attempts it takes the lock waiting, like a plain DDL, so that a
# swap under constant reads still completes
SWAP_LOCK_TIMEOUT_MS = 50
SWAP_PATIENCE_S = 5.0
# how long a rollback or a swap waits for a reprocess in flight to swap or fail
CLAIM_WAIT_S = 120.0


def _lock_not_available(exc: BaseException) -> bool:
    return getattr(getattr(exc, "orig", None), "pgcode", None) == "55P03"


def with_short_locks(attempt: Callable[[int], T]) -> T:
    """Run `attempt(lock_timeout_ms)` (one transaction that changes the alias view) with a
    short lock timeout, retried with jitter for SWAP_PATIENCE_S, then once waiting for the
    lock (0: no timeout): a DDL waiting for its lock queues every new reader behind it,
    so it must give up quickly instead."""
    import random
    import time

    from sqlalchemy.exc import OperationalError

    patient_after = time.monotonic() + SWAP_PATIENCE_S
    attempts = 0
    while True:
        attempts += 1
        impatient = time.monotonic() < patient_after
        try:
            return attempt(SWAP_LOCK_TIMEOUT_MS if impatient else 0)
        except OperationalError as exc:
            if not (impatient and _lock_not_available(exc)):
                raise
            time.sleep(random.uniform(0.01, 0.05) * min(attempts, 10))


@dataclass(frozen=True)
class SwapRequest:
    """What a swap is asked for and records.

    `to_version`: None for the current fingerprint's version, which must have passed its
    gate. `reason`, `run_id`, `git_commit` and `by` (else the OS user) are recorded with the
    swap. `owner`: the swap takes the pipeline's claim as this owner (a reprocess run's
    swap step takes over its run's claim; a rollback waits up to CLAIM_WAIT_S for a
    reprocess in flight); None only where the alias keeps serving the version it served
    (repair). `check_job`: a version whose job is not alive is refused (the alias would
    serve a table nobody updates; repair it first)."""

    to_version: int | None = None
    reason: str = "reprocess"
    run_id: str | None = None
    git_commit: str | None = None
    by: str | None = None
    owner: str | None = None
    check_job: bool = False


def swap(pipeline: LoadedPipeline, services: Services, request: SwapRequest = SwapRequest()) -> SwapResult:
    """Point the alias at a version in one transaction and record the swap.

    Between members of the alias view (`serving.build_alias`) the swap is an update of
    the registry's live version: no DDL, readers never wait. Otherwise (a version that is
    not a member, other columns) the view is rebuilt with short lock timeouts."""

    def once(lock_timeout_ms: int) -> SwapResult:
        return _swap_once(pipeline, services, request, lock_timeout_ms)

    if request.owner is None:
        return with_short_locks(once)
    claimant = claims.Claimant(request.owner, wait_s=CLAIM_WAIT_S)
    with claims.holding(
        services.warehouse, pipeline.name, claimant, fingerprint=pipeline.fingerprint, log=services.log
    ):
        return with_short_locks(once)


def _same_columns(row: registry.VersionRow, other: registry.VersionRow) -> bool:
    """Both versions recorded the same target columns, names and types (so one view can
    serve either)."""
    mine, theirs = (row.definition or {}).get("columns"), (other.definition or {}).get("columns")
    return mine is not None and mine == theirs


def join_alias(pipeline: LoadedPipeline, version: int, *, warehouse: WarehouseResource, log: Log) -> bool:
    """Make a version that passed its gate a member of the alias view (when it has the
    view's columns), so that the swap to it is a registry update; True if it joined."""

    spec = pipeline.spec

    def attempt(lock_timeout_ms: int) -> bool:
        with warehouse.begin() as conn:
            registry.lock_pipeline(conn, spec.name)
            current = alias_members(conn, spec)
            rows = registry.pipeline_versions(conn, spec.name)
            row = next(r for r in rows if r.version == version)
            live = next((r for r in rows if r.version == registry.live_versions(conn).get(spec.name)), None)
            if (
                current is None
                or live is None
                or live.physical_table not in current[0]
                or row.physical_table in current[0]
                or not _same_columns(row, live)
            ):
                return False
            build_alias(
                conn, spec, [*current[0], row.physical_table], current[1], lock_timeout_ms=lock_timeout_ms
            )
            return True

    joined = with_short_locks(attempt)
    if joined:
        log(f"{spec.target.alias}: v{version} joined the alias view (a swap to it is a registry update)")
    return joined


def _swap_once(
    pipeline: LoadedPipeline, services: Services, request: SwapRequest, lock_timeout_ms: int
) -> SwapResult:
    """One attempt at the swap, in one transaction (lock_timeout_ms 0: wait for the lock).

    Without `to_version`: the current fingerprint's version, which must have passed its
    gate (state ready). A no-op when the alias already serves it. The first swap of a
    pipeline creates its alias (recorded with the reason "first deploy").
    """
    spec, reason = pipeline.spec, request.reason
    with registry.session(services.warehouse) as conn:
        registry.lock_pipeline(conn, spec.name)
        rows = registry.pipeline_versions(conn, spec.name)
        live = registry.live_versions(conn).get(spec.name)
        target = _swap_target(pipeline, rows, request.to_version)
        _refuse_unserving(conn, spec, target, live, services.engine if request.check_job else None)
        count = _row_count(conn, spec, target)
        columns = target.columns or [c.name for c in spec.target.columns]
        view = alias_members(conn, spec)
        if live == target.version and view is not None and target.physical_table in view[0]:
            if target.state != registry.LIVE:  # repair a registry that lost the live state
                transitions.restore_live(conn, spec.name, target.version)
            return SwapResult(False, live, target.version, target.physical_table, count)
        if live == target.version:
            reason = "alias rebuilt"  # the view was dropped (by hand?) or does not serve the live version
        if view is None or target.physical_table not in view[0] or view[1] != columns:
            # the view changes: its members are the retained versions with the target's columns
            members = [
                r.physical_table
                for r in rows
                if r.state in (registry.READY, registry.LIVE) and _same_columns(r, target)
            ]
            build_alias(
                conn, spec, [*members, target.physical_table], columns, lock_timeout_ms=lock_timeout_ms
            )
        previous = transitions.mark_live(
            conn, pipeline=spec.name, alias=spec.target.alias, version=target.version
        )
        reason = "first deploy" if previous is None else reason
        _record(
            conn, spec, target, previous, replace(request, reason=reason, by=request.by or getpass.getuser())
        )
    source = f"v{previous}" if previous is not None else "nothing"
    services.log(f"{spec.target.alias}: {source} -> v{target.version} ({reason}, {count} rows)")
    before = next((r for r in rows if r.version == previous), None)
    services.lineage.swapped(pipeline, to=target, previous=before, reason=reason)
    return SwapResult(True, previous, target.version, target.physical_table, count)


def _swap_target(
    pipeline: LoadedPipeline, rows: list[registry.VersionRow], to_version: int | None
) -> registry.VersionRow:
    """The version the alias moves to: asked for, or the current fingerprint's; it must
    have passed its gate (ready or live)."""
    spec, current = pipeline.spec, pipeline.fingerprint
    if to_version is None:
        target = next((r for r in rows if r.fingerprint == current), None)
        if target is None:
            raise OperationRefused(
                f"{spec.name!r} has no version of its current fingerprint {current}",
                "materialise its __versions asset first (it deploys, catches up and checks it)",
            )
        if target.state not in (registry.READY, registry.LIVE):
            raise GateFailed(
                f"v{target.version} of {spec.name!r} is {target.state}: the alias only moves to a "
                "version that passed its checks" + (f" ({target.error})" if target.error else ""),
                "see `kappa-orch status`; fix the spec and reprocess",
            )
        return target
    target = next((r for r in rows if r.version == to_version), None)
    retained = [f"v{r.version}" for r in rows if r.state in (registry.READY, registry.LIVE)]
    if target is None or target.state not in (registry.READY, registry.LIVE):
        state = "does not exist" if target is None else f"is {target.state}"
        raise GateFailed(
            f"v{to_version} of {spec.name!r} {state}; the alias can only move to a retained "
            f"version that passed its checks: {', '.join(retained) or 'none'}",
            "choose one of those with --to",
        )
    return target


def _refuse_unserving(
    conn: Connection,
    spec: PipelineSpec,
    target: registry.VersionRow,
    live: int | None,
    flink: StreamEngine | None,
) -> None:
    """A version whose job is not running, or whose table is gone, cannot serve."""
    if flink is not None and live != target.version:
        job_state = flink.job_state(target.flink_job_id) if target.flink_job_id else "UNKNOWN"
        if job_state not in ACTIVE_JOB_STATES:
            raise OperationRefused(
                f"v{target.version} of {spec.name!r} is {target.state} but its Flink job "
                f"{target.flink_job_id or '(none)'} is {job_state}: the alias would serve a table "
                "nobody updates",
                f"redeploy its job first (kappa-orch repair {spec.name} --version {target.version}), "
                "then swap again",
            )
    if (spec.target.schema_name, target.physical_table) not in existing_tables(
        conn, {spec.target.schema_name}
    ):
        raise OperationRefused(
            f"v{target.version} of {spec.name!r} is {target.state} but its table "
            f"{spec.target.schema_name}.{target.physical_table} is missing (dropped by hand?)",
            f"it cannot serve: kappa-orch repair {spec.name} marks it failed; choose another version",
        )


def _row_count(conn: Connection, spec: PipelineSpec, target: registry.VersionRow) -> int:
    from sqlalchemy import func, select

    from kappa_orch.registry.serving import version_table

    table = version_table(spec, target.physical_table)
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _record(
    conn: Connection,
    spec: PipelineSpec,
    target: registry.VersionRow,
    previous: int | None,
    request: SwapRequest,
) -> None:
    accepted = {
        name: str(result["accepted"])
        for name, result in (target.check_results or {}).items()
        if isinstance(result, dict) and result.get("accepted")
    }
    record = registry.SwapRecord(
        spec.name,
        spec.target.alias,
        from_version=previous,
        to_version=target.version,
        fingerprint=target.fingerprint,
        reason=request.reason,
        run_id=request.run_id,
        git_commit=request.git_commit,
        swapped_by=request.by or getpass.getuser(),
        accepted=accepted,
    )
    registry.record_swap(conn, record)


def retire(
    pipeline: LoadedPipeline, version: int, services: Services, *, owner: str, wait_s: float = 120.0
) -> None:
    """Stop a replaced version's job and drop its table (idempotent), under the pipeline's
    claim (as `owner`; waiting up to `wait_s` for a reprocess in flight)."""
    spec = pipeline.spec
    claimant = claims.Claimant(owner, wait_s=wait_s)
    with claims.holding(
        services.warehouse, spec.name, claimant, fingerprint=pipeline.fingerprint, log=services.log
    ):
        _retire(pipeline, version, services)


def _retire(pipeline: LoadedPipeline, version: int, services: Services) -> None:
    spec, flink, warehouse, log = pipeline.spec, services.engine, services.warehouse, services.log
    row = version_row(warehouse, spec.name, version)
    with warehouse.begin() as conn:
        if registry.live_versions(conn).get(spec.name) == version:
            raise OperationRefused(f"v{version} of {spec.name!r} is live and cannot be retired")
    if row.state == registry.RETIRED:
        return
    if row.flink_job_id and flink.job_state(row.flink_job_id) in ACTIVE_JOB_STATES:
        flink.cancel(row.flink_job_id)

    def attempt(lock_timeout_ms: int) -> None:

        with warehouse.begin() as conn:
            registry.lock_pipeline(conn, spec.name)
            current = alias_members(conn, spec)
            if current is not None and row.physical_table in current[0]:
                # the alias view leaves the table first (it never serves it: it is not live)
                rest = [t for t in current[0] if t != row.physical_table]
                build_alias(conn, spec, rest, current[1], lock_timeout_ms=lock_timeout_ms)
            drop_version_table(conn, spec, row.physical_table)
            warehouse.drop_job_role(conn, f"{spec.name}:v{version}")
            # its fingerprint set aside: the spec set back to it deploys a new version
            aside = f"{row.spec_fingerprint}~v{version}"
            transitions.mark_retired(conn, spec.name, version, fingerprint_aside=aside)

    with_short_locks(attempt)
    services.lineage.retired(pipeline, row)
    log(f"{spec.name}: v{version} retired (job stopped, {row.physical_table} dropped)")
