"""Job health: whether every live and ready version of a pipeline has an alive Flink job
(the pure verdict behind the `flink_job_running` check of `stream_checks`)."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kappa_orch.plan.decide import SERVING, degraded
from kappa_orch.registry import store as registry
from kappa_orch.spec.model import LoadedPipeline, PipelineSpec, parse_duration

TROUBLED = frozenset({"FAILED", "FAILING", "RESTARTING"})

JOB_RUNNING_CHECK = "flink_job_running"
JOB_RUNNING_DESCRIPTION = (
    "Every live and ready version's Flink job is alive (running or restarting by itself) and "
    "processes: fails when one is gone (the repair sensor redeploys it) or has been restarting or "
    "waiting for task slots longer than the spec's health.max_stalled (e.g. its TaskManager never "
    "came back): the alias would serve, or a rollback would serve, a table nobody updates."
)


@dataclass(frozen=True)
class JobHealth:
    """The `flink_job_running` verdict of one pipeline (pure data)."""

    pipeline: str
    passed: bool
    summary: str
    problems: list[str]
    exceptions: dict[int, str]  # version -> the root cause of its job's last failure


def job_health(
    pipeline: LoadedPipeline,
    rows: Sequence[registry.VersionRow],
    live: dict[str, int],
    job_states: dict[str, str],
    root_causes: dict[str, str],
) -> JobHealth:
    """Whether every live and ready version of the pipeline has an alive job (pure). A job
    missing from `job_states` was not asked (no verdict on it); a version without a job id
    has no job."""
    mine = [r for r in rows if r.pipeline == pipeline.name and r.state in SERVING]
    problems, exceptions = [], {}
    for row in mine:
        problem = degraded(row, job_states.get(row.flink_job_id) if row.flink_job_id else "UNKNOWN")
        if problem is not None:
            live_note = (
                " (live: the alias serves a table nobody updates)"
                if live.get(row.pipeline) == row.version
                else ""
            )
            problems.append(problem + live_note)
            cause = root_causes.get(row.flink_job_id or "")
            if cause:
                exceptions[row.version] = cause
    if problems:
        summary = "; ".join(problems) + f"; repair: kappa-orch repair {pipeline.name}"
    else:
        summary = f"{len(mine)} live/ready version(s), every job alive"
    return JobHealth(pipeline.name, not problems, summary, problems, exceptions)


SLOTS_FIX = (
    "Flink has too few free task slots: a TaskManager is gone or the cluster is full; start "
    "it again (`kappa-orch stack up` restarts a dead one) or add TaskManagers"
)
# a stalled job's root cause -> what to do (the first that matches)
STALL_FIXES = (
    (
        (
            "NoResourceAvailableException",
            "Could not acquire the minimum required resources",
            "slot",
            "TaskManager",
            "eartbeat",
        ),
        SLOTS_FIX,
    ),
    (
        ("NotEnoughReplicas", "kafka", "Kafka"),
        "Kafka does not take or serve the records (brokers down, too few in-sync replicas): "
        "`kappa-orch stack status` shows the brokers; start the dead ones (`kappa-orch stack up`)",
    ),
)


def stall_fix(cause: str | None, waiting_tasks: int = 0) -> str:
    """What to do about a job that stays restarting or waiting, by its root cause (pure)."""
    for needles, fix in STALL_FIXES:
        if cause and any(n in cause for n in needles):
            return fix
    if waiting_tasks:
        return SLOTS_FIX
    return "see the job's exceptions in the Flink UI; `kappa-orch stack status` shows the services"


def stalled_problems(
    pipeline: LoadedPipeline,
    rows: Sequence[registry.VersionRow],
    stalls: dict[str, tuple[int, int]],
    root_causes: dict[str, str],
    *,
    now_ms: int,
    bound_s: float,
) -> list[str]:
    """Live and ready versions whose job is alive but has processed nothing (restarting,
    or tasks waiting for slots) for longer than `bound_s`: it serves stale rows (pure)."""
    problems = []
    for row in rows:
        if row.pipeline != pipeline.name or row.state not in SERVING or row.flink_job_id not in stalls:
            continue
        since_ms, waiting = stalls[row.flink_job_id or ""]
        stalled_s = (now_ms - since_ms) / 1000
        if stalled_s <= bound_s:
            continue
        what = f"{waiting} task(s) waiting to run" if waiting else "restarting"
        cause = root_causes.get(row.flink_job_id or "")
        problems.append(
            f"v{row.version} is {row.state} but its Flink job {row.flink_job_id} has processed nothing "
            f"for {stalled_s:,.0f}s ({what}"
            + (f"; last failure: {cause}" if cause else "")
            + f"); fix: {stall_fix(cause, waiting)}"
        )
    return problems


def stale_versions(
    spec: PipelineSpec, groups: Mapping[str, str], event_lags: Mapping[tuple[str, str], Mapping[int, int]]
) -> list[str]:
    """The versions (`groups`: label -> consumer group) whose newest committed event trails
    the log's by more than the spec's freshness, in words (none declared: none; pure)."""
    if spec.freshness is None:
        return []
    bound_ms, stale = parse_duration(spec.freshness) * 1000, []
    for label, group in groups.items():
        lags = [ms for s in spec.sources for ms in event_lags.get((group, s.topic), {}).values()]
        behind = max(lags, default=0)
        if behind > bound_ms:
            stale.append(
                f"{label} trails the log by {behind / 1000:,.0f}s of event time (freshness {spec.freshness})"
            )
    return stale
