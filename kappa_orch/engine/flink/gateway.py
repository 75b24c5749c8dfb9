"""Flink's SQL Gateway as kappa_orch uses it: one session per job, its statements run
one by one, the INSERTs checked against Flink's reading of them, then submitted as a
statement set or compiled into a plan (COMPILE PLAN) and started from it (EXECUTE PLAN)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kappa_orch.engine.flink.compiled import canonical_plan, plan_folder, table_definitions
from kappa_orch.engine.flink.statements import check_statement_set
from kappa_orch.engine.protocol import CompiledJob, JobDefinition
from kappa_orch.errors import FlinkJobError, ServiceUnavailable

if TYPE_CHECKING:
    from kappa_orch.engine.flink.resource import FlinkResource


def open_session(
    flink: FlinkResource,
    job_name: str,
    configuration: Mapping[str, str] | None,
    savepoint_path: str | None = None,
) -> str:
    """A session whose properties name the job and set its configuration (and where it
    restores from)."""
    properties = {
        "pipeline.name": flink.job_name(job_name),
        "table.dml-sync": "false",
        **(configuration or {}),
    }
    if savepoint_path:
        properties["execution.savepoint.path"] = savepoint_path
    session: str = flink._call("POST", flink.sql_gateway_url, "/v1/sessions", {"properties": properties})[
        "sessionHandle"
    ]
    return session


def checked_set(flink: FlinkResource, session: str, inserts: Sequence[str]) -> str:
    """The INSERTs as a statement set's body, once Flink's own parser and planner read
    it as exactly these INSERTs (engine.flink.statements)."""
    # the ';' on its own line: a trailing "-- comment" in the SQL must not swallow it
    body = "\n".join(f"{s.rstrip().rstrip(';')}\n;" for s in inserts)
    plan: list[str] = []
    run_statement(flink, session, f"EXPLAIN STATEMENT SET BEGIN\n{body}\nEND", rows=plan)
    check_statement_set("\n".join(plan), inserts)
    return body


def compile_job(flink: FlinkResource, job: JobDefinition) -> CompiledJob | None:
    """The job compiled by the SQL Gateway (COMPILE PLAN into plan_dir) and made
    canonical (engine.flink.compiled); None without a plan_dir."""
    if not flink.plan_dir:
        return None
    folder = plan_folder(flink.plan_dir)
    raw = folder / f".{uuid.uuid4().hex}.raw.json"
    session = open_session(flink, job.job_name, job.configuration)
    try:
        for statement in job.setup:
            run_statement(flink, session, statement)
        body = checked_set(flink, session, job.inserts)
        run_statement(flink, session, f"COMPILE PLAN '{raw.as_uri()}' FOR STATEMENT SET BEGIN\n{body}\nEND")
    finally:
        close_session(flink, session)
    try:
        document = json.loads(raw.read_text())
    except (OSError, ValueError) as exc:
        raise FlinkJobError(
            f"the SQL Gateway compiled {job.job_name}'s plan into {raw}, "
            f"but kappa_orch cannot read it: {exc}",
            "plan_dir (KAPPA_FLINK_PLAN_DIR) must be a folder both the SQL Gateway and kappa_orch "
            "read and write; unset it to run jobs without compiled plans",
        ) from exc
    finally:
        raw.unlink(missing_ok=True)
    plan = canonical_plan(document, table_definitions(job.setup, job.configuration))
    return CompiledJob(plan.fingerprint, tuple(sorted(plan.stateful_uids)), plan.json)


def submit(flink: FlinkResource, job: JobDefinition, savepoint_path: str | None, plan: str | None) -> str:
    """Run the job's setup statements (CREATE TABLE ..., SET ...) then its INSERTs as one
    detached job (a statement set), or, given the `plan` compile_job made of them, that
    plan (EXECUTE PLAN); return its job id once Flink accepted it."""
    if not job.inserts:
        raise ValueError("a job needs at least one INSERT statement")
    to_run = plan_file(flink, plan) if plan is not None else None
    session = open_session(flink, job.job_name, job.configuration, savepoint_path)
    try:
        for statement in job.setup:
            run_statement(flink, session, statement)
        if to_run is not None:
            job_id = run_statement(flink, session, f"EXECUTE PLAN '{to_run.as_uri()}'")
        else:
            body = checked_set(flink, session, job.inserts)
            job_id = run_statement(flink, session, f"EXECUTE STATEMENT SET BEGIN\n{body}\nEND")
    finally:
        close_session(flink, session)
    if job_id is None:
        what = "plan" if plan is not None else "statement set"
        raise FlinkJobError(f"Flink accepted the {what} of {job.job_name!r} but returned no job id")
    return job_id


def plan_file(flink: FlinkResource, plan: str) -> Path:
    """The plan's file in plan_dir (named by its content, written once)."""
    if not flink.plan_dir:
        raise FlinkJobError(
            "this job was compiled into a plan, but the Flink resource has no plan_dir",
            "set plan_dir (KAPPA_FLINK_PLAN_DIR) to the folder the plans are kept in",
        )
    path = plan_folder(flink.plan_dir) / f"{hashlib.sha256(plan.encode()).hexdigest()[:24]}.json"
    if not path.exists():
        staging = path.with_name(f".{uuid.uuid4().hex}.json")
        staging.write_text(plan)
        staging.chmod(0o644)  # the SQL Gateway's account reads it
        staging.replace(path)
    return path


def run_statement(
    flink: FlinkResource, session: str, statement: str, rows: list[str] | None = None
) -> str | None:
    """Execute one statement and wait for it; the job id when it submitted a job. `rows`:
    collects the fields of the rows it returns (an EXPLAIN's plan)."""
    operation = flink._call(
        "POST", flink.sql_gateway_url, f"/v1/sessions/{session}/statements", {"statement": statement}
    )["operationHandle"]
    deadline = time.monotonic() + flink.submit_timeout_s
    token = 0
    while time.monotonic() < deadline:
        path = f"/v3/sessions/{session}/operations/{operation}/result/{token}?rowFormat=JSON"
        try:
            result = flink._call("GET", flink.sql_gateway_url, path)
        except FlinkJobError as exc:
            raise FlinkJobError(
                f"Flink rejected the statement:\n{shorten(statement)}\n{exc.problem}",
                "fix the SQL (names, types, connector options) and submit again",
            ) from exc
        if rows is not None:
            rows += [str(f) for row in (result.get("results") or {}).get("data") or [] for f in row["fields"]]
        if result.get("jobID"):
            return str(result["jobID"])
        if result.get("resultType") == "EOS":
            return None
        if result.get("resultType") == "PAYLOAD" and result.get("nextResultUri"):
            token += 1
            continue
        time.sleep(0.2)
    raise FlinkJobError(
        f"the statement did not finish within {flink.submit_timeout_s:.0f}s:\n{shorten(statement)}",
        "check the SQL Gateway log; raise submit_timeout_s on a slow cluster",
    )


def close_session(flink: FlinkResource, session: str) -> None:
    # best effort: sessions also expire on the gateway's idle timeout
    with contextlib.suppress(FlinkJobError, ServiceUnavailable):
        flink._call("DELETE", flink.sql_gateway_url, f"/v1/sessions/{session}")


def shorten(text: str | None, limit: int = 600) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 3] + "..."
