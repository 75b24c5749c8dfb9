"""The guard of bench/change_suite.py: an edit restored the way Flink alone restores it.

The base query runs as a statement set (Flink's automatic operator ids, as a job
submitted without kappa_orch's compiled plans gets), is stopped with a savepoint once it
has read the first half, its rows are copied into the edited query's table, and the
edited query is restored from that savepoint strictly (no unclaimed state allowed). Its
table is then compared with the full replay of the edited spec. An edit Flink restores
and that then differs is what kappa_orch's content ids refuse: the guard shows the
suite's stateful edits would have been silently wrong without them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text

from kappa_orch.engine.protocol import JobTarget
from kappa_orch.lifecycle.deploy import ensure_dead_letter_topic
from kappa_orch.lifecycle.services import Services
from kappa_orch.registry.serving import create_version_table
from kappa_orch.spec.model import LoadedPipeline

CAUGHT_UP_WAIT_S = 240.0


@dataclass(frozen=True)
class Guard:
    pipeline: LoadedPipeline  # the edited query, under a name of its own
    job_id: str | None  # None: Flink refused to restore it
    table: str  # schema.table it fills
    refusal: str = ""


def _start(
    pipeline: LoadedPipeline, services: Services, savepoint: str | None = None
) -> tuple[str, str, str]:
    """Submit the pipeline's statement set (automatic ids) into its own table: job, table, group."""
    spec, warehouse = pipeline.spec, services.warehouse
    table = spec.target.version_table(1)
    qualified = f"{spec.target.schema_name}.{table}"
    with warehouse.begin() as conn:
        create_version_table(conn, spec, table)
        jdbc = warehouse.job_jdbc_options(
            conn, job=f"{spec.name}:v1", writes=[qualified], pipeline=spec.name, version=1
        )
    ensure_dead_letter_topic(pipeline, kafka=services.kafka, log=services.log)
    group = f"suite.{spec.name}"
    job = services.engine.version_job(
        pipeline, 1, JobTarget(table, group, services.kafka.bootstrap_servers, jdbc)
    )
    job_id = services.engine.submit_sql(
        setup=job.setup,
        inserts=job.inserts,
        job_name=job.job_name,
        configuration=job.configuration,
        savepoint_path=savepoint,
    )
    return job_id, qualified, group


def _caught_up(pipeline: LoadedPipeline, services: Services, group: str, job_id: str) -> None:
    """Until the job's group has committed every source's end (at a checkpoint, whose
    flush put the rows in its table)."""
    deadline = time.monotonic() + CAUGHT_UP_WAIT_S
    while True:
        lag = sum(
            sum(services.kafka.consumer_lag(group, source.topic).values()) for source in pipeline.spec.sources
        )
        if lag == 0:
            return
        if services.engine.job_state(job_id) != "RUNNING" or time.monotonic() > deadline:
            raise SystemExit(f"{pipeline.name}: job {job_id} did not catch up (lag {lag})")
        time.sleep(2)


def guard_start(services: Services, base: LoadedPipeline, edited: LoadedPipeline) -> Guard:
    """`base` (a copy of the live spec under a name of its own) over the log so far, stopped
    with a savepoint; `edited` restored from it with the base's rows copied."""
    base_job, base_table, base_group = _start(base, services)
    _caught_up(base, services, base_group, base_job)
    savepoint = services.engine.stop_with_savepoint(base_job)
    spec = edited.spec
    table = f"{spec.target.schema_name}.{spec.target.version_table(1)}"
    columns = ", ".join(f'"{c.name}"' for c in spec.target.columns)
    with services.warehouse.begin() as conn:
        create_version_table(conn, spec, spec.target.version_table(1))
        conn.execute(text(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {base_table}"))
    try:
        job_id, _, _ = _start(edited, services, savepoint)
        services.engine.wait_for_state(job_id, {"RUNNING"}, timeout_s=90.0)
    except Exception as exc:
        return Guard(edited, None, table, refusal=str(exc).splitlines()[0][:200])
    return Guard(edited, job_id, table)


def guard_verdict(guard: Guard, services: Services, differences: Callable[[str], int]) -> str:
    """refused (Flink would not restore it), exact, or silent-wrong (restored, and unequal
    to the full replay)."""
    if guard.job_id is None:
        return "refused"
    try:
        if services.engine.job_state(guard.job_id) != "RUNNING":
            return "refused"
        _caught_up(guard.pipeline, services, f"suite.{guard.pipeline.spec.name}", guard.job_id)
        return "silent-wrong" if differences(guard.table) else "exact"
    finally:
        services.engine.cancel(guard.job_id, wait=False)
