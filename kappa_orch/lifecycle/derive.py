"""The live rows put through a candidate's computed columns and filters by a bounded Flink
job (issue 26, point 3): the derivation of a cheap start whose columns are not all copies.

The live rows are first copied, inside the warehouse, into a staging table (at the fence,
in the same transaction that carries the live counts over; at derive-parity's quiet point,
in the same snapshot as the candidate's rows), so that the live job runs again at once.
The job reading the staging table is compiled before anything is stopped, and its plan
must apply exactly the expressions the candidate's plan applies (the round trip,
engine.flink.derive); a plan that does not, or a job that fails, makes the change replay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select

from kappa_orch.engine.protocol import CompiledJob, JobDefinition
from kappa_orch.errors import KappaError
from kappa_orch.lifecycle.batch import wait_finished
from kappa_orch.lifecycle.services import Services
from kappa_orch.registry.serving import create_version_table, drop_version_table, version_table
from kappa_orch.spec.model import LoadedPipeline

# how long a derivation may take before it is given up (the change then replays)
DERIVE_TIMEOUT_S = 1800.0


def through_flink(started: Mapping[str, Any]) -> bool:
    """Whether a derivation (a Change, or a cheap start's record) computes a column or
    filters rows: then Flink derives, else the warehouse copies."""
    return bool(started.get("expressions") or started.get("conditions"))


@dataclass(frozen=True)
class Derivation:
    """A compiled derivation job: from `staging` (the live columns) into `target`."""

    staging: str
    target: str
    job: JobDefinition
    compiled: CompiledJob
    role: str  # the job's warehouse role, by its job key (dropped with the staging table)


def expected(
    columns: Sequence[str], copies: Mapping[str, str | None], expressions: Mapping[str, Any]
) -> list[Any]:
    """The candidate's columns as expressions over the live columns (copies as leaves)."""
    return [
        {"kind": "LIVE_COLUMN", "name": copies[c]} if copies.get(c) is not None else expressions[c]
        for c in columns
    ]


def prepare(
    pipelines: tuple[LoadedPipeline, LoadedPipeline],
    tables: tuple[str, str],
    started: Mapping[str, Any],
    services: Services,
) -> Derivation | str:
    """The derivation job from `tables` (staging, made here with the live version's
    columns; target, made here unless it exists, with the candidate's) for the candidate
    (`pipelines`: the candidate's and the live version's), compiled and its round trip
    checked; or why not."""
    pipeline, live = pipelines
    staging, target = tables
    spec, schema = pipeline.spec, pipeline.spec.target.schema_name
    copies, expressions = dict(started.get("derivation") or {}), dict(started.get("expressions") or {})
    conditions = list(started.get("conditions") or [])
    live_columns = [[c.name, c.type] for c in live.spec.target.columns]
    role = f"{spec.name}:derive:{target}"
    with services.warehouse.begin() as conn:
        create_version_table(conn, live.spec, staging)
        create_version_table(conn, spec, target)
        jdbc = services.warehouse.job_jdbc_options(
            conn,
            job=role,
            writes=[f"{schema}.{target}"],
            reads=[f"{schema}.{staging}"],
        )
    engine = services.engine
    try:
        job = engine.derive_job(
            pipeline, (f"{schema}.{staging}", live_columns), (copies, expressions, conditions), target, jdbc
        )
        compiled = engine.compile_job(job)
        names = [c.name for c in spec.target.columns]
        problem = (
            None
            if compiled is None
            else engine.derivation_problem(
                compiled.document, (expected(names, copies, expressions), conditions)
            )
        )
    except (KappaError, ValueError) as exc:
        problem = f"the derivation job could not be compiled ({getattr(exc, 'problem', exc)})"
    else:
        if compiled is None:
            problem = "the engine keeps no compiled plans to check a derivation against"
        elif problem:
            problem = f"Flink's plan of the derivation is not the candidate's expressions: {problem}"
    if problem or compiled is None:
        with services.warehouse.begin() as conn:
            drop_version_table(conn, live.spec, staging)
            services.warehouse.drop_job_role(conn, role)
        return problem or "no compiled plan"
    return Derivation(staging, target, job, compiled, role)


def fill(conn: Connection, derivation: Derivation, live: LoadedPipeline, live_table: str) -> int:
    """Copy the live table's rows into the staging table (the caller's transaction)."""
    source = version_table(live.spec, live_table)
    staging = version_table(live.spec, derivation.staging)
    names = [c.name for c in source.columns]
    conn.execute(staging.delete())
    done = conn.execute(insert(staging).from_select(names, select(*[source.c[n] for n in names])))
    return int(done.rowcount or 0)


def run(derivation: Derivation, pipeline: LoadedPipeline, services: Services) -> int:
    """Run the derivation to its end; the rows its target holds then."""
    engine, spec = services.engine, pipeline.spec
    job_id = engine.submit_plan(derivation.job, derivation.compiled.document)
    wait_finished(
        engine, job_id, timeout_s=DERIVE_TIMEOUT_S, log=services.log, what=f"{spec.name} derivation"
    )
    with services.warehouse.begin() as conn:
        table = version_table(spec, derivation.target)
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def drop_staging(derivation: Derivation, live: LoadedPipeline, services: Services) -> None:
    """The staging table and the derivation job's role go (its job has ended)."""
    with services.warehouse.begin() as conn:
        drop_version_table(conn, live.spec, derivation.staging)
        services.warehouse.drop_job_role(conn, derivation.role)
