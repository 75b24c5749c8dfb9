"""Where a version's job resumes from: the savepoint it was stopped with, else its last
checkpoint (as Flink's REST API or the registry tells it); and stopping a job that should
not go on while keeping that point, so a redeploy of the same fingerprint resumes instead
of replaying the log."""

from __future__ import annotations

import time

import yaml

from kappa_orch.engine.protocol import ACTIVE_JOB_STATES, StreamEngine
from kappa_orch.errors import FlinkJobError, OperationRefused
from kappa_orch.lifecycle.services import Services
from kappa_orch.registry import store as registry
from kappa_orch.spec.model import LoadedPipeline, PipelineSpec


def restore_path(row: registry.VersionRow | None, flink: StreamEngine) -> tuple[str | None, str]:
    """Where a version's lost or stopped job resumes from, and who said so: the savepoint
    its old job was stopped with, else the last completed checkpoint of its old job as
    Flink's REST API reports it, else the one the registry recorded for that job (the
    cluster forgot the job, e.g. a JobManager restarted); never a listing of the storage."""
    previous_job = row.flink_job_id if row else None
    if not previous_job:
        return None, ""
    recorded = (row.checkpoint if row else None) or {}
    if (
        recorded.get("job_id") == previous_job
        and recorded.get("checkpoint_id") == registry.STOPPED_WITH_SAVEPOINT
        and recorded.get("path")
    ):
        # the job was stopped with a savepoint (stop_keeping_state): its periodic checkpoints,
        # which Flink's REST API still names, were discarded when it finished
        return str(recorded["path"]), "the registry (the savepoint its job was stopped with)"
    path = flink.latest_retained_checkpoint(previous_job)
    if path:
        return path, "Flink's REST API"
    if recorded.get("job_id") == previous_job and recorded.get("path"):
        return str(recorded["path"]), f"the registry (checkpoint {recorded.get('checkpoint_id')})"
    return None, ""


def stop_keeping_state(name: str, row: registry.VersionRow, why: str, services: Services) -> str | None:
    """Stop a version's job that should not go on (a failed or abandoned candidate): its
    slot is freed, and the savepoint (else the retained checkpoint of a cancel) is where a
    redeploy of the same fingerprint resumes (restore_path). The savepoint is recorded in
    the registry too, for a cluster that forgets the job. Returns where it resumes from."""
    job_id, flink, log = row.flink_job_id, services.engine, services.log
    if not job_id or flink.job_state(job_id) not in ACTIVE_JOB_STATES:
        return None
    try:
        path: str | None = flink.stop_with_savepoint(job_id)
        told = "a savepoint"
        # recorded: the job's periodic checkpoints, which Flink still names, were discarded
        saved = {
            "path": path,
            "checkpoint_id": registry.STOPPED_WITH_SAVEPOINT,
            "completed_at_ms": int(time.time() * 1000),
        }
        with services.warehouse.begin() as conn:
            registry.record_checkpoint(conn, name, row.version, job_id, saved)
    except FlinkJobError as exc:
        log(f"{name}: v{row.version}'s job {job_id} took no savepoint ({exc.problem}); cancelling it")
        flink.cancel(job_id)  # its last checkpoint is retained on cancellation
        path, told = flink.latest_retained_checkpoint(job_id), "its last checkpoint"
    log(
        f"{name}: v{row.version}'s job {job_id} stopped ({why}); its slot is free"
        + (f"; a reprocess of this fingerprint resumes it from {told}: {path}" if path else "")
    )
    return path


def pipeline_of_version(row: registry.VersionRow, current: LoadedPipeline) -> LoadedPipeline:
    """The pipeline as the version was deployed: the current spec when the fingerprints
    match, else the spec and SQL recorded in the version's definition."""
    if row.spec_fingerprint == current.fingerprint:
        return current
    definition = row.definition or {}
    if not definition.get("spec") or definition.get("sql") is None:
        raise OperationRefused(
            f"v{row.version} of {row.pipeline!r} has no recorded spec (it was deployed by a kappa_orch "
            "before version definitions), so its job cannot be rebuilt",
            f"serve another version, or retire it: kappa-orch retire {row.pipeline} {row.version}",
        )
    spec = PipelineSpec.model_validate(yaml.safe_load(str(definition["spec"])))
    recorded = LoadedPipeline(spec=spec, sql_text=str(definition["sql"]), path=current.path)
    if recorded.fingerprint != row.spec_fingerprint:
        raise OperationRefused(
            f"v{row.version} of {row.pipeline!r} was built by an older kappa_orch (its recorded spec now "
            f"fingerprints {recorded.fingerprint}, not {row.fingerprint}), so its job cannot be rebuilt "
            "as it was",
            f"serve another version, or retire it: kappa-orch retire {row.pipeline} {row.version}",
        )
    return recorded
