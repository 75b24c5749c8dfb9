"""What each pipeline needs, from the registry and its jobs' states: the plan behind
`kappa-orch plan`, the reprocess, repair and retire sensors (pure).

Health: a live or ready version is `degraded` when its Flink job is not alive (failed,
cancelled, or unknown to a restarted cluster): its table stops updating although the
registry still says it serves. A superseded candidate (not the spec's fingerprint, not
live) whose job is gone while it was catching up or checking is `abandoned`: nobody will
finish it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection

from kappa_orch import registry
from kappa_orch.claims import held_claims
from kappa_orch.reprocess import due_for_retirement
from kappa_orch.resources.flink import ACTIVE_JOB_STATES, FlinkResource
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.serving import existing_tables
from kappa_orch.spec.fingerprint import fingerprint
from kappa_orch.spec.model import LoadedPipeline

IN_FLIGHT = frozenset({registry.DEPLOYING, registry.CATCHING_UP, registry.CHECKING})
# versions that must have a running job: the alias serves them or a rollback may
SERVING = frozenset({registry.LIVE, registry.READY})


def degraded(row: registry.VersionRow, job_state: str | None, table_present: bool = True) -> str | None:
    """Why a live or ready version is degraded (its table is gone, or its job is not
    alive), or None (pure). `job_state` None: not asked (e.g. Flink unreachable), which
    is not a verdict."""
    if row.state not in SERVING:
        return None
    if not table_present:
        return (
            f"v{row.version} is {row.state} but its table {row.physical_table} is missing (dropped by hand?)"
        )
    if job_state is None or job_state in ACTIVE_JOB_STATES:
        return None
    job = row.flink_job_id or "(none recorded)"
    return f"v{row.version} is {row.state} but its Flink job {job} is {job_state}"


def column_diff(live: Sequence[Sequence[str]] | None, spec: Sequence[Sequence[str]]) -> list[str]:
    """What the spec's target columns change against the live version's (pure):
    `+ name TYPE` added, `- name TYPE` removed, `~ name OLD -> NEW` retyped. Empty when
    equal or when the live version's columns were not recorded."""
    if live is None:
        return []
    before = {name: kind for name, kind in live}
    after = {name: kind for name, kind in spec}
    changes = [f"+ {name} {kind}" for name, kind in after.items() if name not in before]
    changes += [f"- {name} {kind}" for name, kind in before.items() if name not in after]
    changes += [
        f"~ {name} {before[name]} -> {kind}"
        for name, kind in after.items()
        if name in before and before[name] != kind
    ]
    return changes


def column_changes(live_row: registry.VersionRow | None, pipeline: LoadedPipeline) -> list[str]:
    """`column_diff` of the pipeline's spec against its live version's recorded columns."""
    return column_diff(
        (live_row.definition or {}).get("columns") if live_row else None,
        [[c.name, c.type] for c in pipeline.spec.target.columns],
    )


def abandoned(row: registry.VersionRow, job_state: str | None, desired: str, live: int | None) -> bool:
    """A superseded candidate whose job is gone before it was gated (pure)."""
    return (
        row.state in (registry.CATCHING_UP, registry.CHECKING)
        and row.fingerprint != desired
        and row.version != live
        and job_state is not None
        and job_state not in ACTIVE_JOB_STATES
    )


@dataclass(frozen=True)
class PipelinePlan:
    pipeline: str
    live_version: int | None
    live_fingerprint: str | None
    desired_fingerprint: str
    action: str  # none | deploy | reprocess | repair | blocked
    detail: str
    retire: list[int] = field(default_factory=list)
    repair: list[int] = field(default_factory=list)  # degraded live/ready versions to redeploy
    abandon: list[int] = field(default_factory=list)  # superseded candidates whose job is gone
    problems: list[str] = field(default_factory=list)  # what is degraded, in words
    column_changes: list[str] = field(default_factory=list)  # spec's columns against the live version's

    @property
    def requests_run(self) -> bool:
        return self.action in ("deploy", "reprocess")


def plan(
    pipelines: Sequence[LoadedPipeline],
    rows: Sequence[registry.VersionRow],
    live: dict[str, int],
    claims: dict[str, str],
    now: datetime,
    job_states: Mapping[str, str] | None = None,
    missing_tables: frozenset[tuple[str, int]] = frozenset(),
    no_alias: frozenset[str] = frozenset(),
) -> list[PipelinePlan]:
    """`job_states` (job id -> Flink state; UNKNOWN for a job the cluster does not know):
    without it, jobs are not judged (no repair, no abandon). `missing_tables`:
    (pipeline, version) whose version table is gone."""
    due = due_for_retirement(list(pipelines), list(rows), live, now)
    states = job_states or {}

    def state_of(row: registry.VersionRow) -> str | None:
        if job_states is None:
            return None
        return states.get(row.flink_job_id or "", "UNKNOWN")

    plans = []
    for pipeline in pipelines:
        name = pipeline.name
        desired = fingerprint(pipeline)
        mine = [r for r in rows if r.pipeline == name]
        live_row = next((r for r in mine if r.version == live.get(name)), None)
        candidate = next((r for r in mine if r.fingerprint == desired), None)
        retire = [r.version for r in due if r.pipeline == name]
        verdicts = {
            r.version: degraded(r, state_of(r), (name, r.version) not in missing_tables) for r in mine
        }
        problems = [p for p in verdicts.values() if p is not None]
        if name in no_alias and live_row is not None:
            problems.append(
                f"the alias view {pipeline.spec.target.alias} of live v{live_row.version} is missing"
            )
        repair = [v for v, p in verdicts.items() if p is not None]
        abandon = [r.version for r in mine if abandoned(r, state_of(r), desired, live.get(name))]
        live_degraded = live_row is not None and live_row.version in repair
        if live_row is not None and live_row.fingerprint == desired and name in no_alias:
            action, detail = "repair", problems[-1]
        elif live_row is not None and live_row.fingerprint == desired and live_degraded:
            action = "repair"
            detail = f"{verdicts[live_row.version]}: the alias serves a table nobody updates"
        elif live_row is not None and live_row.fingerprint == desired:
            action, detail = "none", f"v{live_row.version} serves the spec's fingerprint"
        elif name in claims:
            action, detail = "blocked", f"a reprocess is in flight ({claims[name]})"
        elif candidate is not None and candidate.state == registry.FAILED:
            reason = (candidate.error or "").splitlines()[0][:200] if candidate.error else "failed"
            action, detail = "blocked", f"candidate v{candidate.version} failed, not retried: {reason}"
        elif candidate is not None and candidate.state == registry.RETIRED:
            action, detail = "blocked", f"fingerprint {desired} was v{candidate.version}, now retired"
        elif live_row is None:
            action, detail = "deploy", "no live version yet"
        else:
            if candidate is None:
                detail = f"spec changed: v{live_row.version} runs {live_row.fingerprint}"
            else:
                detail = f"candidate v{candidate.version} is {candidate.state}"
            action = "reprocess"
        plans.append(
            PipelinePlan(
                pipeline=name,
                live_version=live_row.version if live_row else None,
                live_fingerprint=live_row.fingerprint if live_row else None,
                desired_fingerprint=desired,
                action=action,
                detail=detail,
                retire=retire,
                repair=repair,
                abandon=abandon,
                problems=problems,
                column_changes=column_changes(live_row, pipeline),
            )
        )
    return plans


def current_plan(
    pipelines: Sequence[LoadedPipeline], warehouse: WarehouseResource, flink: FlinkResource | None = None
) -> list[PipelinePlan]:
    """The plan for the registry as it is now (reads the warehouse; with `flink`, also the
    state of every job a live, ready or in-flight version holds, to judge health)."""
    with warehouse.registry() as conn:
        rows = registry.all_versions(conn)
        live = registry.live_versions(conn)
        missing = missing_version_tables(conn, pipelines, rows)
        no_alias = missing_aliases(conn, pipelines, live)
    names = {p.name for p in pipelines}
    job_states = None
    if flink is not None:
        job_states = {
            r.flink_job_id: flink.job_state(r.flink_job_id)
            for r in rows
            if r.pipeline in names and r.flink_job_id and r.state in SERVING | IN_FLIGHT
        }
    return plan(
        pipelines, rows, live, held_claims(warehouse), datetime.now(UTC), job_states, missing, no_alias
    )


def missing_aliases(
    conn: Connection, pipelines: Sequence[LoadedPipeline], live: dict[str, int]
) -> frozenset[str]:
    """Pipelines with a live version whose alias view is gone (dropped by hand?)."""
    from sqlalchemy import inspect

    views: dict[str, set[str]] = {}
    missing = set()
    for p in pipelines:
        if p.name not in live:
            continue
        schema = p.spec.target.schema_name
        if schema not in views:
            views[schema] = set(inspect(conn).get_view_names(schema=schema))
        if p.spec.target.table_name not in views[schema]:
            missing.add(p.name)
    return frozenset(missing)


def missing_version_tables(
    conn: Connection, pipelines: Sequence[LoadedPipeline], rows: Sequence[registry.VersionRow]
) -> frozenset[tuple[str, int]]:
    """(pipeline, version) of live and ready versions whose table is gone."""
    schemas = {p.name: p.spec.target.schema_name for p in pipelines}
    present = existing_tables(conn, set(schemas.values()))
    return frozenset(
        (r.pipeline, r.version)
        for r in rows
        if r.pipeline in schemas
        and r.state in SERVING
        and (schemas[r.pipeline], r.physical_table) not in present
    )
