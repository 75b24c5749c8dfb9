"""Job health: whether every live and ready version of a pipeline has an alive Flink job,
as the `flink_job_running` asset check (run on demand, and reported by the stream
observation sensor when its verdict changes)."""

from collections.abc import Sequence
from dataclasses import dataclass

from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    MetadataValue,
    asset_check,
)

from kappa_orch import registry
from kappa_orch.dagster.translator import DEFAULT_TRANSLATOR, KappaTranslator
from kappa_orch.plan import SERVING, degraded
from kappa_orch.resources.flink import FlinkResource
from kappa_orch.resources.warehouse import WarehouseResource
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


def _health_metadata(health: JobHealth) -> dict[str, object]:
    metadata: dict[str, object] = {"summary": health.summary}
    for version, cause in sorted(health.exceptions.items()):
        metadata[f"root_cause/v{version}"] = MetadataValue.text(cause)
    return metadata


def job_health_evaluation(
    pipeline: LoadedPipeline, health: JobHealth, translator: KappaTranslator = DEFAULT_TRANSLATOR
) -> AssetCheckEvaluation:
    return AssetCheckEvaluation(
        asset_key=translator.version_key(pipeline.spec),
        check_name=JOB_RUNNING_CHECK,
        passed=health.passed,
        severity=AssetCheckSeverity.ERROR,
        description=health.summary[:2000],
        metadata=_health_metadata(health),  # type: ignore[arg-type]
    )


def _ask_health(
    pipeline: LoadedPipeline, flink: FlinkResource, rows: Sequence[registry.VersionRow], live: dict[str, int]
) -> JobHealth:
    mine = [r for r in rows if r.pipeline == pipeline.name and r.state in SERVING and r.flink_job_id]
    states = {r.flink_job_id or "": flink.job_state(r.flink_job_id or "") for r in mine}
    causes = {
        job: cause
        for job, state in states.items()
        if state in ("FAILED", "RESTARTING") and (cause := flink.job_root_cause(job))
    }
    return job_health(pipeline, rows, live, states, causes)


def job_health_checks(
    pipelines: Sequence[LoadedPipeline], translator: KappaTranslator = DEFAULT_TRANSLATOR
) -> list[AssetChecksDefinition]:
    """`flink_job_running` on every pipeline's versions asset: executable (it asks Flink now)
    and reported by the stream observation sensor when its verdict changes."""

    def build(pipeline: LoadedPipeline) -> AssetChecksDefinition:
        @asset_check(
            asset=translator.version_key(pipeline.spec),
            name=JOB_RUNNING_CHECK,
            description=JOB_RUNNING_DESCRIPTION,
            blocking=False,
        )
        def _check(
            context: AssetCheckExecutionContext, flink: FlinkResource, warehouse: WarehouseResource
        ) -> AssetCheckResult:
            with warehouse.registry() as conn:
                rows = registry.pipeline_versions(conn, pipeline.name)
                live = registry.live_versions(conn)
            health = _ask_health(pipeline, flink, rows, live)
            return AssetCheckResult(
                passed=health.passed,
                severity=AssetCheckSeverity.ERROR,
                description=health.summary[:2000],
                metadata=_health_metadata(health),  # type: ignore[arg-type]
            )

        return _check

    return [build(p) for p in pipelines]
