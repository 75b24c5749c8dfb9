"""Flink as a Dagster resource: SQL statement sets through the SQL Gateway, jobs through
the JobManager's REST API. No JVM runs in the calling process."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import requests
from dagster import ConfigurableResource
from pydantic import Field

from kappa_orch.engine.flink import derive, gateway, plan_diff
from kappa_orch.engine.flink.batch import batch_job, slice_job
from kappa_orch.engine.flink.gateway import shorten
from kappa_orch.engine.flink.sql import version_job
from kappa_orch.engine.protocol import (
    TERMINAL_STATES,
    Checkpoint,
    CompiledJob,
    EngineJob,
    JobDefinition,
    JobTarget,
    PlanDiff,
)
from kappa_orch.errors import FlinkJobError, KappaError, ServiceUnavailable
from kappa_orch.spec.model import LoadedPipeline

# what to check when the TLS handshake fails (the local stack asks for its client certificate)
_TLS_HINT = (
    "; the TLS handshake failed: the endpoint's certificate must be in KAPPA_FLINK_TLS_CA and, for the "
    "local stack (mutual TLS), its client certificate in KAPPA_FLINK_TLS_CERT: "
    '`eval "$(kappa-orch stack env)"` sets both'
)


class FlinkResource(ConfigurableResource):  # type: ignore[type-arg]
    """A Flink session cluster: its REST endpoint and the SQL Gateway in front of it."""

    rest_url: str = Field(description="JobManager REST endpoint, e.g. http://127.0.0.1:8081.")
    sql_gateway_url: str = Field(description="SQL Gateway REST endpoint, e.g. http://127.0.0.1:8083.")
    request_timeout_s: float = Field(default=30.0, gt=0, description="Timeout of one HTTP request.")
    deployment: str = Field(
        default="default",
        description="This deployment's name, the first part of every job name "
        "(`<deployment>/kappa:<pipeline>:v<N>`): two deployments on one cluster tell their jobs apart.",
    )
    submit_timeout_s: float = Field(
        default=180.0, gt=0, description="How long a statement may take to plan and submit."
    )
    tls_ca: str | None = Field(default=None, description="PEM certificate(s) the endpoints' https presents.")
    tls_cert: str | None = Field(default=None, description="PEM client certificate and key (mutual TLS).")
    plan_dir: str | None = Field(
        default=None,
        description="A folder both the SQL Gateway and kappa_orch read and write (a path or file:// "
        "URI; the local stack's: <home>/flink/plans). Set: each version's job is compiled into a plan "
        "there, with operator ids derived from what each operator computes, and started from it "
        "(EXECUTE PLAN). Unset: jobs run as statement sets with Flink's automatic operator ids.",
    )

    # -- HTTP -------------------------------------------------------------------------

    def _call(self, method: str, base: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        url = f"{base.rstrip('/')}{path}"
        try:
            response = requests.request(
                method,
                url,
                json=body,
                timeout=self.request_timeout_s,
                verify=self.tls_ca or True,
                cert=self.tls_cert,
            )
        except requests.RequestException as exc:
            service = "SQL Gateway" if base == self.sql_gateway_url else "Flink REST API"
            raise ServiceUnavailable(
                f"the {service} at {base} did not answer ({method} {path}): {exc}",
                "check that the cluster runs (`kappa-orch stack status`) and the URL is right"
                + (_TLS_HINT if isinstance(exc, requests.exceptions.SSLError) else ""),
            ) from exc
        if response.status_code >= 400:
            raise FlinkJobError(
                f"{method} {url} failed with HTTP {response.status_code}: {_errors(response)}"
            )
        return response.json() if response.content else None

    # -- SQL Gateway -------------------------------------------------------------------

    def job_name(self, name: str) -> str:
        """A job's name on the cluster: the deployment's name, then kappa_orch's."""
        return f"{self.deployment}/{name}"

    def version_job(self, pipeline: LoadedPipeline, version: int, target: JobTarget) -> JobDefinition:
        """A version's job in Flink SQL (engine.flink.sql)."""
        return version_job(pipeline.spec, pipeline.sql_text, version, target)

    def batch_job(
        self, pipeline: LoadedPipeline, days: tuple[date, date], target: JobTarget
    ) -> JobDefinition:
        """The pipeline's batch job over `days` in Flink SQL (engine.flink.batch)."""
        return batch_job(pipeline, days, target)

    def slice_job(
        self, pipeline: LoadedPipeline, ranges: Mapping[str, Mapping[int, tuple[int, int]]], target: JobTarget
    ) -> JobDefinition:
        """The pipeline's SQL over a slice of offsets (engine.flink.batch)."""
        return slice_job(pipeline, ranges, target)

    def compile_job(self, job: JobDefinition) -> CompiledJob | None:
        """The job compiled by the SQL Gateway (COMPILE PLAN into plan_dir) and made
        canonical (engine.flink.compiled); None without a plan_dir."""
        return gateway.compile_job(self, job)

    def compare_plans(
        self, live: str, candidate: str, columns: tuple[Sequence[str], Sequence[str]]
    ) -> PlanDiff:
        """What the candidate's compiled plan changes against the live one's
        (engine.flink.plan_diff)."""
        return plan_diff.compare(live, candidate, columns)

    def derive_job(
        self,
        pipeline: LoadedPipeline,
        live: tuple[str, Sequence[Sequence[str]]],
        derivation: tuple[Mapping[str, str | None], Mapping[str, Any], Sequence[Any]],
        target_table: str,
        jdbc: Mapping[str, str],
    ) -> JobDefinition:
        """The derivation of a cheap start in Flink SQL (engine.flink.derive)."""
        return derive.derive_job(pipeline.spec, live, derivation, target_table, jdbc)

    def derivation_problem(self, document: str, expected: tuple[Sequence[Any], Sequence[Any]]) -> str | None:
        """The derivation's plan against the candidate's expressions (the round trip)."""
        return derive.same_expressions(derive.applied_expressions(document, derive.LIVE_SCAN), expected)

    def submit_sql(
        self,
        *,
        setup: Sequence[str],
        inserts: Sequence[str],
        job_name: str,
        configuration: Mapping[str, str] | None = None,
        savepoint_path: str | None = None,
    ) -> str:
        """Run setup statements (CREATE TABLE ..., SET ...) then the INSERTs as one detached
        job (a statement set); return its job id once Flink accepted it."""
        job = JobDefinition(job_name, list(setup), list(inserts), dict(configuration or {}))
        return gateway.submit(self, job, savepoint_path, None)

    def submit_plan(self, job: JobDefinition, plan: str, *, savepoint_path: str | None = None) -> str:
        """Start the job from the plan compile_job made of it (EXECUTE PLAN, after its setup
        statements); its id."""
        return gateway.submit(self, job, savepoint_path, plan)

    # -- jobs --------------------------------------------------------------------------

    def list_jobs(self) -> list[EngineJob]:
        """Every job the cluster knows, with its state."""
        overview = self._call("GET", self.rest_url, "/jobs/overview")
        return [
            EngineJob(j["jid"], j["name"], j["state"], j.get("start-time")) for j in overview.get("jobs", [])
        ]

    def job(self, job_id: str) -> EngineJob:
        """One job by id (an error when the cluster does not know it)."""
        detail = self._call("GET", self.rest_url, f"/jobs/{job_id}")
        counts = detail.get("status-counts") or {}
        waiting = sum(int(n) for task_state, n in counts.items() if task_state not in ("RUNNING", "FINISHED"))
        return EngineJob(
            detail["jid"],
            detail["name"],
            detail["state"],
            detail.get("start-time"),
            since_ms=(detail.get("timestamps") or {}).get(detail["state"]),
            waiting_tasks=waiting,
            vertices=tuple((v["id"], v["name"]) for v in detail.get("vertices", [])),
        )

    def job_url(self, job_id: str) -> str:
        """The job's page in the Flink web UI."""
        return f"{self.rest_url.rstrip('/')}/#/job/running/{job_id}/overview"

    def job_state(self, job_id: str) -> str:
        """The job's state; UNKNOWN when the cluster does not know the job (e.g. it restarted)."""
        try:
            return self.job(job_id).state
        except FlinkJobError:
            return "UNKNOWN"

    def latest_retained_checkpoint(self, job_id: str) -> str | None:
        """The external path of the job's last completed checkpoint as Flink's REST API
        reports it (for a running, cancelled or failed job; on any storage: file://, s3://
        ...), or None when the cluster does not know the job (e.g. its JobManager restarted
        without HA) or the job completed none. Nothing is listed on the storage itself."""
        try:
            checkpoint = self.last_checkpoint(job_id)
        except FlinkJobError:
            return None
        return checkpoint.external_path if checkpoint else None

    def job_exception(self, job_id: str) -> str | None:
        """The root exception of a failed or restarting job, if any."""
        history = self._call("GET", self.rest_url, f"/jobs/{job_id}/exceptions")
        root = (history.get("exceptionHistory") or {}).get("entries") or []
        if root:
            return str(root[0].get("stacktrace") or root[0].get("exceptionName"))
        return None

    def job_root_cause(self, job_id: str) -> str | None:
        """The innermost cause of the job's newest failure (e.g. `NoResourceAvailableException:
        Could not acquire the minimum required resources`), not the restart strategy's
        wrapper; None when the job has not failed."""
        try:
            return root_cause(self.job_exception(job_id))
        except KappaError:
            return None

    def slots(self) -> tuple[int, int]:
        """(free, total) task slots of the cluster."""
        overview = self._call("GET", self.rest_url, "/overview")
        return int(overview.get("slots-available", 0)), int(overview.get("slots-total", 0))

    def late_records(
        self, job_id: str, *, metrics_wait_s: float = 20.0, job: EngineJob | None = None
    ) -> dict[str, int]:
        """Records each operator of the job dropped as late (event time behind the
        watermark), summed over its subtasks: operator (e.g. `GroupWindowAggregate[86]`) ->
        count. Flink keeps these counters since the job's last (re)start.

        The REST API serves metrics it fetched from the TaskManagers (every 10 s by
        default): a vertex without any metric yet is waited for, so that "no late
        records" is never an answer given before the counters could be seen. `job`: the
        job's detail when the caller has just read it (its vertices are not asked again)."""
        from urllib.parse import quote

        dropped: dict[str, int] = {}
        deadline = time.monotonic() + metrics_wait_s
        vertices = (job or self.job(job_id)).vertices
        for vertex_id, vertex_name in vertices:
            base = f"/jobs/{job_id}/vertices/{vertex_id}/subtasks/metrics"
            names = [m["id"] for m in self._call("GET", self.rest_url, base) or []]
            while not names and time.monotonic() < deadline:
                time.sleep(1.0)
                names = [m["id"] for m in self._call("GET", self.rest_url, base) or []]
            if not names:
                raise FlinkJobError(
                    f"Flink has no metrics yet for job {job_id} ({vertex_name[:80]})",
                    "the job may be restarting; check it in the Flink UI and ask again",
                )
            late = [n for n in names if n.endswith(".numLateRecordsDropped")]
            if not late:
                continue
            values = self._call("GET", self.rest_url, f"{base}?get={quote(','.join(late))}&agg=sum")
            for metric in values or []:
                operator = str(metric["id"]).removesuffix(".numLateRecordsDropped")
                dropped[operator] = dropped.get(operator, 0) + int(metric.get("sum") or 0)
        return dropped

    def known_late_records(
        self, job_id: str | None, *, metrics_wait_s: float = 20.0, job: EngineJob | None = None
    ) -> dict[str, int] | None:
        """`late_records`, or None when the job cannot be asked (no job, no metrics yet,
        Flink unreachable): callers report "unknown", never zero."""
        if not job_id:
            return None
        try:
            return self.late_records(job_id, metrics_wait_s=metrics_wait_s, job=job)
        except KappaError:
            return None

    def last_checkpoint(self, job_id: str) -> Checkpoint | None:
        """The job's last completed checkpoint (id, completion time, external path), or None."""
        return self.checkpoint_stats(job_id)[0]

    def checkpoint_interval_ms(self, job_id: str) -> int | None:
        """How often the job checkpoints (ms), as Flink runs it; None: not periodically."""
        interval = self._call("GET", self.rest_url, f"/jobs/{job_id}/checkpoints/config").get("interval")
        return int(interval) if interval and int(interval) > 0 else None

    def checkpoint_stats(self, job_id: str) -> tuple[Checkpoint | None, str | None]:
        """The job's last completed checkpoint, and why its checkpoints fail when one failed
        after it (e.g. the storage refusing writes), else None."""
        latest = self._call("GET", self.rest_url, f"/jobs/{job_id}/checkpoints").get("latest") or {}
        completed, failed = latest.get("completed"), latest.get("failed")
        checkpoint = (
            Checkpoint(
                int(completed["id"]), int(completed["latest_ack_timestamp"]), completed.get("external_path")
            )
            if completed
            else None
        )
        failure = None
        if failed and (
            checkpoint is None or int(failed.get("failure_timestamp") or 0) > checkpoint.completed_at_ms
        ):
            failure = root_cause(str(failed.get("failure_message") or "")) or "unknown"
        return checkpoint, failure

    def wait_for_state(self, job_id: str, states: set[str], *, timeout_s: float = 60.0) -> EngineJob:
        """Poll until the job is in one of `states`; an error after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            if job.state in states:
                return job
            if job.state in TERMINAL_STATES or time.monotonic() > deadline:
                cause = self.job_exception(job_id) if job.state == "FAILED" else None
                raise FlinkJobError(
                    f"job {job_id} is {job.state}, expected {sorted(states)}"
                    + (f"; cause:\n{shorten(cause, 1500)}" if cause else "")
                )
            time.sleep(0.5)

    def cancel(self, job_id: str, *, wait: bool = True) -> None:
        """Cancel the job (no savepoint); with `wait`, until Flink reports it cancelled."""
        self._call("PATCH", self.rest_url, f"/jobs/{job_id}?mode=cancel")
        if wait:
            self.wait_for_state(job_id, {"CANCELED"}, timeout_s=60)

    def stop_with_savepoint(
        self, job_id: str, *, target_dir: str | None = None, timeout_s: float = 120.0
    ) -> str:
        """Stop the job after a savepoint; return the savepoint's location once the job finished."""
        body: dict[str, Any] = {"drain": False}
        if target_dir:
            body["targetDirectory"] = target_dir
        trigger = self._call("POST", self.rest_url, f"/jobs/{job_id}/stop", body)["request-id"]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self._call("GET", self.rest_url, f"/jobs/{job_id}/savepoints/{trigger}")
            if status["status"]["id"] == "COMPLETED":
                operation = status.get("operation") or {}
                if "location" in operation:
                    # the savepoint exists before the job has wound down: wait for that too
                    self.wait_for_state(job_id, {"FINISHED"}, timeout_s=max(1.0, deadline - time.monotonic()))
                    return str(operation["location"])
                raise FlinkJobError(
                    f"stop-with-savepoint of job {job_id} failed: "
                    f"{shorten(str(operation.get('failure-cause')), 1500)}"
                )
            time.sleep(0.5)
        raise FlinkJobError(f"stop-with-savepoint of job {job_id} did not complete within {timeout_s:.0f}s")


def root_cause(stacktrace: str | None) -> str | None:
    """The last `Caused by:` of a Java stack trace (its first line when there is none)."""
    if not stacktrace:
        return None
    lines = [line.strip() for line in stacktrace.splitlines() if line.strip()]
    causes = [line.removeprefix("Caused by:").strip() for line in lines if line.startswith("Caused by:")]
    return (causes[-1] if causes else lines[0])[:1000] if lines else None


def _errors(response: requests.Response) -> str:
    try:
        errors = response.json().get("errors", [])
    except ValueError:
        return response.text[:1500]
    # the gateway returns [summary, java stack trace]; the cause is the trace's last "Caused by"
    text = "\n".join(str(e) for e in errors)
    causes = [line.strip() for line in text.splitlines() if line.strip().startswith("Caused by:")]
    return (causes[-1] if causes else shorten(text, 1500)) if text else response.text[:1500]
