"""What kind of change a spec makes to its live version, from their compiled plans (pure).

The class says how cheaply the change could be made while staying exact, and why:

- `metadata`: the fingerprint is the live version's (checks, owner, tags, alias changed):
  no new version, no job;
- `same_plan`: the candidate compiles to the live version's plan, operator for operator
  and table for table: the live table already holds what the candidate would compute;
- `stateless_forward`: no operator on the way to the table keeps state but the sources,
  and every column is computed from the live table's: carry the offsets, derive the rows;
- `state_compatible`: every stateful operator of the candidate is one of the live plan's
  (the same computation over the same input), nothing else is changed but projections
  and filters after them, and the columns derive from the live table's: restore the state,
  derive the rows;
- `breaking`: anything else (new state, state the candidate would drop, a column the live
  table cannot give, a non-deterministic function, processing time, a user-defined
  function, state time-to-live, another Flink version): a full replay;
- `first`: no live version to compare with (or none with a compiled plan).

What a reprocess does with it (`applied`): `nothing` for `metadata`; `savepoint` for a
cheap class: the new version starts from the live version's savepoint with the live rows
copied (lifecycle.cheap), or, when a column is computed anew or a filter applies after the
shared operators, put through those expressions by a bounded Flink job (lifecycle.derive);
`replay` for the rest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kappa_orch.engine.protocol import PlanDiff
from kappa_orch.registry import store as registry
from kappa_orch.spec.model import LoadedPipeline

# planning rate for deriving rows inside the warehouse until one is measured
# (../shared/research/changing-a-query.md §3: 100k-700k rows/s for a set-based copy)
DERIVE_ROWS_PER_S = 100_000.0
# what a cheap start costs whatever the log holds: the fence (savepoint, copy, both jobs
# started again) and a catch-up with nothing to read that still waits for the new job's
# checkpoints (bench/change.py on the 2-core machine: 27.9-28.5 s in all)
CHEAP_START_S = 28.0
REPLAY_OVERHEAD_S = 13.0
# what deriving rows through a bounded Flink job adds to a cheap start besides the rows:
# the derivation compiled, started and finished (bench/change_suite.py, six derivations of
# 400-100,022 rows on the 2-core machine: median 5 s over a plain copy)
DERIVE_JOB_S = 5.0
# what the slice check adds to a cheap start of a pipeline without state: a bounded batch
# job replaying 20,000 records and the comparison (bench/change_suite.py, the per-event
# map's four stateless edits on the 2-core machine: 0-8 s more, median 5.5 s)
SLICE_CHECK_S = 5.0
# a live job stopped with a savepoint and started again from it with other settings, to
# its first checkpoint (lifecycle.reconfigure)
RESTART_S = 15.0
CHEAP = frozenset({"metadata", "same_plan", "stateless_forward", "state_compatible"})


@dataclass(frozen=True)
class Change:
    """A change's class, why, and what its path costs (events read, rows derived, seconds:
    a cheap class's cheap path, else the replay)."""

    kind: str
    reasons: list[str] = field(default_factory=list)
    events_to_read: int | None = None
    rows_to_derive: int | None = None
    estimate_s: float | None = None
    # what a reprocess does with it now: "nothing", "restart" (the live job, from a
    # savepoint, with new settings), "savepoint" (a new version starts from the live
    # version's savepoint, rows copied) or "replay" (see the module's docstring)
    applied: str = "replay"
    derivation: dict[str, str | None] | None = None  # candidate column -> live column copied
    # computed columns' expressions and filters over the live columns (PlanDiff's)
    expressions: dict[str, Any] = field(default_factory=dict)
    conditions: list[Any] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # live columns the candidate does not keep
    # binds the live and the candidate's plans: what an approval names (plan_id)
    plan_id: str | None = None

    @property
    def cheap(self) -> bool:
        return self.kind in CHEAP


@dataclass(frozen=True)
class Columns:
    """A version's target columns ((name, type), in order) and primary key."""

    columns: Sequence[Sequence[str]]
    primary_key: Sequence[str]

    @property
    def names(self) -> list[str]:
        return [str(c[0]) for c in self.columns]


@dataclass(frozen=True)
class Costs:
    """What the estimate reads: the records a replay reads, the live table's rows, and
    the live version's measured replay speed (None: not measured)."""

    records_held: int | None
    live_rows: int | None
    events_per_s: float | None
    # what a replay takes besides reading: see replay_fixed_s
    replay_fixed_s: float = 0.0


def replay_fixed_s(stable_for_s: float) -> float:
    """What a replay takes besides reading the log: deploying, the job's start, its first
    checkpoint, the spec's stability window and a checkpoint after it, the gate and the
    swap (bench/change_suite.py on the 2-core machine: 27-29 s for a replay whose reading
    took 13 s, with a 2 s window)."""
    return REPLAY_OVERHEAD_S + stable_for_s


def key_problems(diff: PlanDiff, live: Columns, candidate: Columns) -> list[str]:
    """Why the live table's rows cannot be carried over by key and by type."""
    copies = diff.derivation or {}
    problems = []
    carried = {copies.get(c) for c in candidate.primary_key}
    if None in carried or carried != set(live.primary_key):
        problems.append(
            f"the primary key changes ({', '.join(live.primary_key)} -> {', '.join(candidate.primary_key)}): "
            "the live table's rows are not the candidate's rows"
        )
    types = {str(c[0]): str(c[1]) for c in live.columns}
    for name, kind in candidate.columns:
        source = copies.get(str(name))
        if source is not None and types.get(source) != str(kind):
            problems.append(
                f"column {name} copies {source} but changes its type ({types.get(source)} -> {kind})"
            )
    return problems


def classify(diff: PlanDiff | None, live: Columns | None, candidate: Columns, costs: Costs) -> Change:
    """The class of a change whose fingerprint differs from the live version's (see the
    module's docstring); `diff` None: the plans could not be compared."""
    if live is None:
        return _replay("first", ["no live version"], costs)
    if diff is None:
        return _replay("breaking", ["the live version has no compiled plan to compare with"], costs)
    if diff.same_plan and list(live.columns) == list(candidate.columns):
        reasons = ["the candidate compiles to the live version's plan, for the same table"]
        copies = dict(diff.derivation or {})
        estimate = (
            None if costs.live_rows is None else round(CHEAP_START_S + costs.live_rows / DERIVE_ROWS_PER_S, 1)
        )
        return Change(
            "same_plan", reasons, 0, costs.live_rows, estimate, applied="savepoint", derivation=copies
        )
    reasons = [*diff.refusals]
    reasons += [f"new state: {n}" for n in diff.new_state]
    reasons += [f"state the candidate would drop: {n}" for n in diff.unclaimed]
    reasons += list(diff.not_derivable)
    if diff.derivation is None and not reasons:
        reasons.append("the candidate's rows cannot be derived from the live table's")
    if not reasons:
        reasons += key_problems(diff, live, candidate)
    if reasons:
        return _replay("breaking", reasons, costs)
    kind = "stateless_forward" if diff.stateless else "state_compatible"
    copied = sorted(c for c, s in (diff.derivation or {}).items() if s is not None)
    computed = sorted(c for c, s in (diff.derivation or {}).items() if s is None)
    why = [f"changed after the state: {n}" for n in diff.changed]
    why.append(
        f"columns copied: {', '.join(copied) or 'none'}; computed from the live columns: "
        f"{', '.join(computed) or 'none'}"
    )
    rows = costs.live_rows
    expressions, conditions = dict(diff.expressions or {}), list(diff.conditions)
    fixed = CHEAP_START_S + (DERIVE_JOB_S if expressions or conditions else 0.0)
    fixed += SLICE_CHECK_S if kind == "stateless_forward" else 0.0
    estimate = None if rows is None else round(fixed + rows / DERIVE_ROWS_PER_S, 1)
    copies = dict(diff.derivation or {})
    if conditions:
        why.append(f"{len(conditions)} filter(s) after the shared operators apply to the live rows")
    return Change(
        kind,
        why,
        0,
        rows,
        estimate,
        applied="savepoint",
        derivation=copies,
        expressions=expressions,
        conditions=conditions,
    )


def _replay(kind: str, reasons: list[str], costs: Costs) -> Change:
    """A change made by a full replay: every record the topics hold is read."""
    estimate = None
    if costs.records_held is not None and costs.events_per_s:
        estimate = round(costs.records_held / costs.events_per_s + costs.replay_fixed_s, 1)
    return Change(kind, reasons, costs.records_held, 0, estimate)


def metadata_change() -> Change:
    """A spec whose fingerprint is the live version's: what it changed is not computed."""
    reasons = ["only what the fingerprint leaves out changed (checks, owner, tags, alias, catch-up policy)"]
    return Change("metadata", reasons, 0, 0, 0.0, applied="nothing")


def settings_change(changed: list[str]) -> Change:
    """A spec whose fingerprint is the live version's but whose job settings are not (its
    freshness): the same plan, run again from a savepoint with the new settings."""
    reasons = [f"job settings: {'; '.join(changed)} (the same plan, the same table)"]
    return Change("same_plan", reasons, 0, 0, RESTART_S, applied="restart")


def dropped_columns(
    live: Columns | None, candidate: Columns, derivation: dict[str, str | None] | None
) -> list[str]:
    """Live columns the candidate neither keeps by name nor copies under another."""
    if live is None:
        return []
    kept = set(candidate.names) | {s for s in (derivation or {}).values() if s is not None}
    return [name for name in live.names if name not in kept]


def plan_id(pipeline: str, live_version: int, plans: tuple[str, str], kind: str) -> str:
    """12 hex digits naming one change: the pipeline, the live version, what the live and
    the candidate's plans compute (their fingerprints) and the class. An approval of it
    cannot be replayed onto another change."""
    material = json.dumps([pipeline, live_version, *plans, kind])
    return hashlib.sha256(material.encode()).hexdigest()[:12]


def needs_approval(change: Change, above_events: int | None, dropping_columns: bool) -> list[str]:
    """Why a change waits for a person (the spec's `approval` settings), or nothing."""
    reasons = []
    events = change.events_to_read or 0
    if above_events is not None and events > above_events:
        reasons.append(f"it reads {events:,} records (approval.above_events: {above_events:,})")
    if dropping_columns and change.dropped:
        reasons.append(f"it drops column(s) {', '.join(change.dropped)} of the live table")
    return reasons


def job_settings(pipeline: LoadedPipeline) -> dict[str, Any]:
    """The spec's settings of how its job runs (kept in a version's definition)."""
    return {"freshness": pipeline.spec.freshness}


def settings_changes(row: registry.VersionRow | None, pipeline: LoadedPipeline) -> list[str]:
    """What differs between the settings `row`'s job runs with and the spec's, in words
    (pure); nothing for a version of another fingerprint (its change makes a new version)."""
    if row is None or row.fingerprint != pipeline.fingerprint:
        return []
    running = (row.definition or {}).get("job_settings") or {"freshness": None}
    wanted = job_settings(pipeline)
    return [
        f"{name} {running.get(name) or 'not declared'} -> {value or 'not declared'}"
        for name, value in wanted.items()
        if running.get(name) != value
    ]
