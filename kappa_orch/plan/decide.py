"""What each pipeline needs, from the registry and its jobs' states: the plan behind
`kappa-orch plan`, the reprocess, repair and retire sensors (pure).

Health: a live or ready version is `degraded` when its Flink job is not alive (failed,
cancelled, or unknown to a restarted cluster): its table stops updating although the
registry still says it serves. A superseded candidate (not the spec's fingerprint, not
live) whose job is gone while it was catching up or checking, or still runs with no run
holding the pipeline's claim, is `abandoned`: nobody will finish it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from kappa_orch.engine.protocol import ACTIVE_JOB_STATES, StreamEngine
from kappa_orch.errors import ClaimHeld, KappaError, OperationRefused
from kappa_orch.plan.change import settings_changes
from kappa_orch.plan.replay_checks import replaced_log_problem, replaced_logs
from kappa_orch.registry import approvals
from kappa_orch.registry import store as registry
from kappa_orch.registry.claims import held_claims
from kappa_orch.registry.serving import missing_aliases, missing_version_tables
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.model import LoadedPipeline, parse_duration

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


def abandoned(
    row: registry.VersionRow, job_state: str | None, desired: str, live: int | None, *, claimed: bool = False
) -> bool:
    """A superseded candidate nobody will gate (pure): its job is gone, or it still runs
    while no run holds the pipeline's claim (the run that deployed it ended or crashed, and
    the spec has moved on), holding a slot for nothing."""
    return (
        row.state in (registry.CATCHING_UP, registry.CHECKING)
        and row.fingerprint != desired
        and row.version != live
        and job_state is not None
        and (job_state not in ACTIVE_JOB_STATES or not claimed)
    )


# a version left in `deploying` longer than this by a crashed run may be taken over
STALE_DEPLOY = timedelta(minutes=10)


DeployAction = Literal["none", "deploy", "redeploy", "wait", "refused"]


@dataclass(frozen=True)
class DeployPlan:
    """What deploying a pipeline's current fingerprint takes: the action, the version,
    its table and consumer group, and why."""

    pipeline: str
    fingerprint: str
    # none: this fingerprint runs; deploy: a new version; redeploy: the version's job again;
    # wait: another run is deploying it; refused: it cannot be deployed (see reason)
    action: DeployAction
    version: int
    physical_table: str
    group_id: str
    reason: str
    fix: str = ""
    # deploy: the version of this fingerprint whose source log was replaced under it (or
    # that was retired); its fingerprint is set aside (`<fingerprint>~v<N>`) for the new one
    releases: int | None = None

    def refusal(self) -> KappaError | None:
        """The error a deploy raises for this plan, or None when it may go ahead."""
        if self.action == "wait":
            return ClaimHeld(self.reason, self.fix)
        if self.action == "refused":
            return OperationRefused(self.reason, self.fix)
        return None


def group_id_for(pipeline: str, version: int) -> str:
    return f"kappa.{pipeline}.v{version}"


def plan_deploy(
    pipeline: LoadedPipeline,
    *,
    rows: list[registry.VersionRow],
    job_states: Mapping[str, str],
    now: datetime,
    holds_claim: bool = False,
    topic_ids: Mapping[str, str | None] | None = None,
    force: bool = False,
) -> DeployPlan:
    """Decide what deploying the pipeline's current fingerprint takes (pure).

    `holds_claim`: the caller holds the pipeline's claim (a reprocess run), so a deploy
    left unfinished is no other live run's: it is taken over at once. `topic_ids`: the
    source topics' ids now; a running version of the fingerprint whose log was replaced
    since (replay_checks.replaced_logs) is replayed into a new version. `force`: a person
    asked for a full replay of the spec (`reprocess --force`): a new version even when
    one of this fingerprint exists."""
    spec = pipeline.spec
    current = pipeline.fingerprint
    existing = next((r for r in rows if r.fingerprint == current), None)
    replaced = replaced_logs(existing, topic_ids or {}) if existing is not None else []
    version = max((r.version for r in rows), default=0) + 1
    new_version = DeployPlan(
        pipeline=spec.name,
        fingerprint=current,
        action="deploy",
        version=version,
        physical_table=spec.target.version_table(version),
        group_id=group_id_for(spec.name, version),
        reason="new fingerprint" if rows else "first deploy",
    )
    if existing is not None and force:
        why = f"a full replay was asked for (--force): v{existing.version} of this fingerprint is set aside"
        return replace(new_version, reason=why, releases=existing.version)
    if existing is not None and replaced and existing.state in registry.RUNNING_STATES:
        topics = ", ".join(r["topic"] for r in replaced)
        why = f"the log of {topics} was replaced under v{existing.version}: replaying the new one"
        return replace(new_version, reason=why, releases=existing.version)
    if existing is not None and existing.state == registry.RETIRED:
        # a spec set back to a fingerprint whose version was retired: deployed again, anew
        why = f"v{existing.version} of this fingerprint was retired: deploying it again as a new version"
        return replace(new_version, reason=why, releases=existing.version)
    if existing is not None:
        action, reason, fix = _existing_version_step(pipeline, existing, job_states, now, holds_claim)
        return DeployPlan(
            pipeline=spec.name,
            fingerprint=current,
            action=action,
            version=existing.version,
            physical_table=existing.physical_table,
            group_id=existing.group_id,
            reason=reason,
            fix=fix,
        )
    return new_version


def _existing_version_step(
    pipeline: LoadedPipeline,
    existing: registry.VersionRow,
    job_states: Mapping[str, str],
    now: datetime,
    holds_claim: bool,
) -> tuple[DeployAction, str, str]:
    """(action, reason, fix) for a fingerprint that already has a version (pure)."""
    name, version = pipeline.name, existing.version
    job_state = job_states.get(existing.flink_job_id or "", "UNKNOWN")
    if existing.state == registry.DEPLOYING and existing.flink_job_id is None:
        started = existing.created_at or now
        if not holds_claim and now - started < STALE_DEPLOY:
            return (
                "wait",
                f"version {version} of {name!r} is being deployed by another run "
                f"(since {started:%Y-%m-%d %H:%M:%S} UTC)",
                "wait for that run to finish; a deploy left behind by a crash is taken over "
                f"after {int(STALE_DEPLOY.total_seconds() // 60)} minutes",
            )
        claimed = " by the run holding the pipeline's claim" if holds_claim else ""
        return "redeploy", "a deploy left unfinished is taken over" + claimed, ""
    # a candidate that failed its checks keeps its job (for inspection): re-check it, not redeploy
    if existing.state in registry.RUNNING_STATES | {registry.FAILED} and job_state in ACTIVE_JOB_STATES:
        return "none", f"v{version} runs this fingerprint (job {job_state})", ""
    return "redeploy", f"v{version} is {existing.state} and its job is {job_state}", ""


def due_for_retirement(
    pipelines: list[LoadedPipeline], rows: list[registry.VersionRow], live: dict[str, int], now: datetime
) -> list[registry.VersionRow]:
    """Replaced versions past their pipeline's grace period (pure)."""
    grace = {p.name: timedelta(seconds=parse_duration(p.spec.retire.grace)) for p in pipelines}
    return [
        r
        for r in rows
        if r.pipeline in grace
        and r.state == registry.READY
        and live.get(r.pipeline) != r.version
        and r.replaced_at is not None
        and now - r.replaced_at >= grace[r.pipeline]
    ]


@dataclass(frozen=True)
class PipelinePlan:
    pipeline: str
    live_version: int | None
    live_fingerprint: str | None
    desired_fingerprint: str
    action: str  # none | deploy | reprocess | reconfigure | repair | blocked
    detail: str
    retire: list[int] = field(default_factory=list)
    repair: list[int] = field(default_factory=list)  # degraded live/ready versions to redeploy
    abandon: list[int] = field(default_factory=list)  # superseded candidates whose job is gone
    problems: list[str] = field(default_factory=list)  # what is degraded, in words
    column_changes: list[str] = field(default_factory=list)  # spec's columns against the live version's
    # what deploying the spec's fingerprint takes now (None when the jobs were not asked)
    deploy: DeployPlan | None = None

    @property
    def requests_run(self) -> bool:
        return self.action in ("deploy", "reprocess", "reconfigure")


@dataclass(frozen=True)
class RegistryView:
    """What the plan reads: the registry's rows, live versions, claims, and what is missing."""

    rows: Sequence[registry.VersionRow]
    live: dict[str, int]
    claims: dict[str, str]
    now: datetime
    # job id -> Flink state (UNKNOWN for a job the cluster does not know); None: not asked
    job_states: Mapping[str, str] | None = None
    missing_tables: frozenset[tuple[str, int]] = frozenset()  # (pipeline, version)
    no_alias: frozenset[str] = frozenset()  # pipelines whose alias view is gone
    topic_ids: Mapping[str, str | None] | None = None  # source topic -> Kafka topic id; None: not asked
    # (pipeline, spec fingerprint) -> the plan id of its change that waits for approval
    awaiting: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def job_state(self, row: registry.VersionRow) -> str | None:
        if self.job_states is None:
            return None
        return self.job_states.get(row.flink_job_id or "", "UNKNOWN")


def plan(pipelines: Sequence[LoadedPipeline], view: RegistryView) -> list[PipelinePlan]:
    """The plan of every pipeline (pure). Without the view's `job_states` jobs are not
    judged (no repair, no abandon); without its `topic_ids` replaced logs are not seen."""
    due = due_for_retirement(list(pipelines), list(view.rows), view.live, view.now)
    return [pipeline_plan(p, view, [r.version for r in due if r.pipeline == p.name]) for p in pipelines]


def pipeline_plan(pipeline: LoadedPipeline, view: RegistryView, retire: list[int]) -> PipelinePlan:
    """One pipeline's plan: its health, what automation does next, and what a deploy does."""
    name, desired = pipeline.name, pipeline.fingerprint
    mine = [r for r in view.rows if r.pipeline == name]
    live_row = next((r for r in mine if r.version == view.live.get(name)), None)
    verdicts = {
        r.version: degraded(r, view.job_state(r), (name, r.version) not in view.missing_tables) for r in mine
    }
    problems = [p for p in verdicts.values() if p is not None]
    if name in view.no_alias and live_row is not None:
        problems.append(f"the alias view {pipeline.spec.target.alias} of live v{live_row.version} is missing")
    # the one rule of what a deploy of the spec's fingerprint does (as `deploy` applies it)
    step = plan_deploy(
        pipeline, rows=mine, job_states=view.job_states or {}, now=view.now, topic_ids=view.topic_ids
    )
    action, detail = _next_action(pipeline, _Judged(mine, live_row, verdicts, problems), step, view)
    return PipelinePlan(
        pipeline=name,
        live_version=live_row.version if live_row else None,
        live_fingerprint=live_row.fingerprint if live_row else None,
        desired_fingerprint=desired,
        action=action,
        detail=detail,
        retire=retire,
        repair=[v for v, p in verdicts.items() if p is not None],
        abandon=[
            r.version
            for r in mine
            if abandoned(r, view.job_state(r), desired, view.live.get(name), claimed=name in view.claims)
        ],
        problems=problems,
        column_changes=column_changes(live_row, pipeline),
        deploy=step if view.job_states is not None else None,
    )


@dataclass(frozen=True)
class _Judged:
    """One pipeline's versions as the plan judged them."""

    mine: list[registry.VersionRow]
    live_row: registry.VersionRow | None
    verdicts: dict[int, str | None]  # version -> why it is degraded (None: healthy)
    problems: list[str]


def _next_action(
    pipeline: LoadedPipeline, judged: _Judged, step: DeployPlan, view: RegistryView
) -> tuple[str, str]:
    """What automation does next (none, deploy, reprocess, repair, blocked), and why (pure)."""
    name, desired = pipeline.name, pipeline.fingerprint
    mine, live_row, verdicts, problems = judged.mine, judged.live_row, judged.verdicts, judged.problems
    candidate = next((r for r in mine if r.fingerprint == desired), None)
    serves_spec = live_row is not None and live_row.fingerprint == desired
    replaced = replaced_logs(live_row, view.topic_ids or {}) if live_row is not None else []
    if live_row is not None and replaced:
        # a person decides: replay the new log, or keep the table (accept-log)
        return "blocked", replaced_log_problem(name, live_row, replaced)
    if live_row is not None and serves_spec and name in view.no_alias:
        return "repair", problems[-1]
    if live_row is not None and serves_spec and verdicts.get(live_row.version):
        return "repair", f"{verdicts[live_row.version]}: the alias serves a table nobody updates"
    if live_row is not None and serves_spec and (changed := settings_changes(live_row, pipeline)):
        return "reconfigure", (
            f"v{live_row.version}'s job restarts from a savepoint with the spec's settings: "
            + "; ".join(changed)
        )
    if live_row is not None and serves_spec:
        return "none", f"v{live_row.version} serves the spec's fingerprint"
    if name in view.claims:
        return "blocked", f"a reprocess is in flight ({view.claims[name]})"
    if (name, desired) in view.awaiting:
        waiting = view.awaiting[(name, desired)]
        return "blocked", f"the change waits for approval: kappa-orch plan --apply --approve {waiting}"
    if candidate is not None and candidate.state == registry.FAILED:
        # automation does not retry a failed candidate; a person's reprocess re-checks it
        reason = (candidate.error or "").splitlines()[0][:200] if candidate.error else "failed"
        return "blocked", f"candidate v{candidate.version} failed, not retried: {reason}"
    if step.action == "refused":
        return "blocked", step.reason
    if live_row is None:
        return "deploy", "no live version yet"
    if candidate is None:
        return "reprocess", f"spec changed: v{live_row.version} runs {live_row.fingerprint}"
    return "reprocess", f"candidate v{candidate.version} is {candidate.state}"


def current_plan(
    pipelines: Sequence[LoadedPipeline],
    warehouse: WarehouseResource,
    flink: StreamEngine | None = None,
    topic_ids: Mapping[str, str | None] | None = None,
) -> list[PipelinePlan]:
    """The plan for the registry as it is now (reads the warehouse; with `flink`, also the
    state of every job a live, ready or in-flight version holds, to judge health; with
    `topic_ids` (KafkaResource.topic_ids of the sources), logs replaced under a version)."""
    with registry.session(warehouse) as conn:
        rows = registry.all_versions(conn)
        live = registry.live_versions(conn)
        missing = missing_version_tables(conn, pipelines, rows)
        no_alias = missing_aliases(conn, pipelines, live)
        awaiting = approvals.waiting(conn)
    names = {p.name for p in pipelines}
    job_states = None
    if flink is not None:
        job_states = {
            r.flink_job_id: flink.job_state(r.flink_job_id)
            for r in rows
            if r.pipeline in names and r.flink_job_id and r.state in SERVING | IN_FLIGHT
        }
    claims, now = held_claims(warehouse), datetime.now(UTC)
    view = RegistryView(rows, live, claims, now, job_states, missing, no_alias, topic_ids, awaiting)
    return plan(pipelines, view)
