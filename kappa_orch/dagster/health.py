"""Job health: whether every live and ready version of a pipeline has an alive Flink job
(the pure verdict behind the `flink_job_running` check of `stream_checks`)."""

from collections.abc import Sequence
from dataclasses import dataclass

from kappa_orch import registry
from kappa_orch.plan import SERVING, degraded
from kappa_orch.spec.model import LoadedPipeline

TROUBLED = frozenset({"FAILED", "FAILING", "RESTARTING"})

JOB_RUNNING_CHECK = "flink_job_running"
JOB_RUNNING_DESCRIPTION = (
    "Every live and ready version's Flink job is alive (running or restarting by itself). "
    "Fails when one is gone: the alias would serve, or a rollback would serve, a table nobody "
    "updates. Reported by the stream observation sensor; the repair sensor redeploys the job."
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
