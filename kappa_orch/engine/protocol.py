"""The stream engine seam: what kappa_orch asks of the engine that runs versions' jobs.

Deploy, catch-up, gate, swap, repair, retire and batch runs are written against
`StreamEngine`, never against one cluster's API. Today's implementation is
`kappa_orch.engine.flink.resource.FlinkResource`: a Flink session cluster reached through its
REST API and SQL Gateway (standalone, or a `FlinkDeployment` in session mode on the Flink
Kubernetes Operator, which exposes the same two endpoints). Another backend (e.g. one
`FlinkSessionJob` per version through the Kubernetes API) implements this protocol and is
passed where a `FlinkResource` is today.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol, runtime_checkable

from kappa_orch.spec.model import LoadedPipeline

TERMINAL_STATES = frozenset({"FINISHED", "CANCELED", "FAILED"})
# a job in one of these states is alive: it runs or will run again by itself
ACTIVE_JOB_STATES = frozenset({"CREATED", "INITIALIZING", "RUNNING", "RESTARTING", "RECONCILING"})


@dataclass(frozen=True)
class EngineJob:
    """A job as the engine lists it: id, name and state (Flink's job states and names)."""

    job_id: str
    name: str
    state: str
    start_time_ms: int | None = None
    # when the job entered its state, and how many of its tasks are not running (waiting
    # for a slot, deploying): a RUNNING job with waiting tasks processes nothing yet
    since_ms: int | None = None
    waiting_tasks: int = 0
    # (vertex id, name) of each operator chain, as the job's detail lists them
    vertices: tuple[tuple[str, str], ...] = ()

    @property
    def processing(self) -> bool:
        """Running with every task running (or finished)."""
        return self.state == "RUNNING" and self.waiting_tasks == 0


@dataclass(frozen=True)
class Checkpoint:
    """A completed checkpoint of a job: its id, when it completed, where it is kept."""

    checkpoint_id: int
    completed_at_ms: int
    external_path: str | None


@dataclass(frozen=True)
class JobDefinition:
    """A job as the engine runs it: its name (before the deployment's prefix), the
    statements that declare its sources and sinks, its INSERTs (run as one job), and its
    configuration."""

    job_name: str
    setup: list[str]
    inserts: list[str]
    configuration: dict[str, str]


@dataclass(frozen=True)
class CompiledJob:
    """A job compiled by the engine into the plan it executes, in a canonical form: the
    same query compiles to the same plan, and each operator's id is derived from what it
    and everything upstream of it compute, so its state is restored only into an operator
    that computes the same thing."""

    fingerprint: str  # what the plan computes, not where it reads or writes
    stateful: tuple[str, ...]  # the operator ids of its stateful nodes
    document: str  # the plan as the engine executes it


@dataclass(frozen=True)
class PlanDiff:
    """What a candidate's plan changes against the live version's, as far as carrying the
    live version's state and rows over is concerned (engine.flink.plan_diff)."""

    same_plan: bool  # every operator computes what the live one does (the same ids)
    # operators on the way to the target table that the live plan does not have (kind: what)
    changed: tuple[str, ...] = ()
    # of those, the ones that keep state (their state cannot come from the live job)
    new_state: tuple[str, ...] = ()
    # stateful operators of the live plan the candidate does not have (their state would go)
    unclaimed: tuple[str, ...] = ()
    # of the live plan's stateful operators the candidate does not have, those that feed
    # only kappa_orch's own bookkeeping (input counters, dead letters: a version's number
    # is part of what they write), which a restore may leave behind
    unclaimed_bookkeeping: tuple[str, ...] = ()
    # candidate column -> the live column it copies, or None when it is computed anew
    derivation: Mapping[str, str | None] | None = None
    # why the candidate's rows cannot be derived from the live table's (empty: they can)
    not_derivable: tuple[str, ...] = ()
    # filters the candidate applies after the operators both plans share: deriving its rows
    # means applying them to the live rows too (a copy alone would keep rows it drops)
    filters: int = 0
    # the computed columns' expressions and the filters, over the live table's columns
    # (LIVE_COLUMN leaves): what a derivation applies to the live rows (engine.flink.derive)
    expressions: Mapping[str, Any] | None = None
    conditions: tuple[Any, ...] = ()
    # why no state or offsets may be carried over at all, whatever else holds
    refusals: tuple[str, ...] = ()
    stateless: bool = False  # no operator on the way to the target keeps state but the sources

    @property
    def derivable(self) -> bool:
        return self.derivation is not None and not self.not_derivable


@dataclass(frozen=True)
class JobTarget:
    """Where a job reads and writes: the table it fills, its consumer group, the Kafka
    bootstrap servers, and its own role's warehouse connection options."""

    table: str
    group_id: str
    bootstrap: str
    jdbc: Mapping[str, str]


@runtime_checkable
class StreamEngine(Protocol):
    """Build a version's job, submit it, ask about it, stop it."""

    def version_job(self, pipeline: LoadedPipeline, version: int, target: JobTarget) -> JobDefinition:
        """A version's streaming job: the pipeline's SQL from its sources (every event
        checked, the broken ones to the dead-letter topic) into the target table."""
        ...

    def batch_job(
        self, pipeline: LoadedPipeline, days: tuple[date, date], target: JobTarget
    ) -> JobDefinition:
        """The pipeline's SQL over the events of the days first..last (and a bootstrap
        snapshot's rows before its `until`), as a bounded job into the target table."""
        ...

    def slice_job(
        self, pipeline: LoadedPipeline, ranges: Mapping[str, Mapping[int, tuple[int, int]]], target: JobTarget
    ) -> JobDefinition:
        """The pipeline's SQL over exactly the offsets `ranges` (per topic, per partition
        [start, end)), as a bounded job into the target table."""
        ...

    def compile_job(self, job: JobDefinition) -> CompiledJob | None:
        """The job's compiled plan, or None when the engine keeps no plans (its jobs then
        run with the engine's automatic operator ids)."""
        ...

    def derive_job(
        self,
        pipeline: LoadedPipeline,
        live: tuple[str, Sequence[Sequence[str]]],
        derivation: tuple[Mapping[str, str | None], Mapping[str, Any], Sequence[Any]],
        target_table: str,
        jdbc: Mapping[str, str],
    ) -> JobDefinition:
        """A bounded job writing the candidate's rows into `target_table` from the live rows
        in `live` (schema.table, its columns): copies, computed columns, filters."""
        ...

    def derivation_problem(self, document: str, expected: tuple[Sequence[Any], Sequence[Any]]) -> str | None:
        """Why a derivation's compiled plan does not apply exactly the expected columns and
        filters (over the live columns), or None."""
        ...

    def compare_plans(
        self, live: str, candidate: str, columns: tuple[Sequence[str], Sequence[str]]
    ) -> PlanDiff:
        """What the candidate's compiled plan changes against the live one's; `columns`:
        the live and the candidate target tables' columns, in order."""
        ...

    def submit_sql(
        self,
        *,
        setup: Sequence[str],
        inserts: Sequence[str],
        job_name: str,
        configuration: Mapping[str, str] | None = None,
        savepoint_path: str | None = None,
    ) -> str:
        """Run the setup statements, then the INSERTs as one detached job; its id."""
        ...

    def submit_plan(self, job: JobDefinition, plan: str, *, savepoint_path: str | None = None) -> str:
        """Start the job from the plan compile_job made of it; its id."""
        ...

    def job_name(self, name: str) -> str:
        """A job's name on the engine: the deployment's prefix, then kappa_orch's name."""
        ...

    def list_jobs(self) -> list[EngineJob]:
        """Every job the engine knows, with its state and start time."""
        ...

    def job_state(self, job_id: str) -> str:
        """RUNNING, FAILED, CANCELED, FINISHED, ..., or UNKNOWN for a job the engine does not know."""
        ...

    def job_exception(self, job_id: str) -> str | None:
        """The job's latest exception (its stack trace), if any."""
        ...

    def job_root_cause(self, job_id: str) -> str | None:
        """The innermost cause of the job's latest exception, in one line."""
        ...

    def cancel(self, job_id: str, *, wait: bool = True) -> None:
        """Stop the job without a savepoint."""
        ...

    def stop_with_savepoint(
        self, job_id: str, *, target_dir: str | None = None, timeout_s: float = 120.0
    ) -> str:
        """Stop the job after a savepoint; its location."""
        ...

    def slots(self) -> tuple[int, int]:
        """(free, total) task slots: a job without one would restart for ever."""
        ...

    def last_checkpoint(self, job_id: str) -> Checkpoint | None:
        """The job's last completed checkpoint (its id, time and external path)."""
        ...

    def checkpoint_stats(self, job_id: str) -> tuple[Checkpoint | None, str | None]:
        """The last completed checkpoint, and why checkpoints fail when one failed after it."""
        ...

    def latest_retained_checkpoint(self, job_id: str) -> str | None:
        """Where a lost job's replacement resumes from (state and offsets together)."""
        ...

    def known_late_records(
        self, job_id: str | None, *, metrics_wait_s: float = 20.0
    ) -> dict[str, int] | None:
        """Records each operator dropped as late, or None when it cannot be asked."""
        ...
