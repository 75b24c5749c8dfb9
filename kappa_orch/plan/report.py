"""What a plan shows a person before it acts (pure): the SQL and spec diff from the
live version (as the registry recorded it at deploy), the records a replay will read and
how long it should take at the live version's measured catch-up speed."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from kappa_orch.plan.change import Change
from kappa_orch.registry import store as registry
from kappa_orch.spec.model import LoadedPipeline

MAX_DIFF_LINES = 80


@dataclass(frozen=True)
class ReplayReport:
    """The change a reprocess would make, and its cost."""

    sql_diff: list[str] = field(default_factory=list)
    spec_diff: list[str] = field(default_factory=list)
    records_to_read: int | None = None  # what the topics hold now (a replay reads it all)
    events_per_s: float | None = None  # the live version's measured catch-up speed
    estimate_s: float | None = None
    # offsets the live version read that the log no longer holds (a replay misses them)
    history_gaps: list[dict[str, object]] = field(default_factory=list)
    # the change's class from the compiled plans (plan.change); None: not compared
    change: Change | None = None
    approval: list[str] = field(default_factory=list)  # why the change waits for approval


def replay_report(
    pipeline: LoadedPipeline,
    live_row: registry.VersionRow | None,
    records_held: int | None,
    history_gaps: list[dict[str, object]] | None = None,
) -> ReplayReport:
    """The diff of the spec against the live version's recorded definition, and the
    replay's size and estimated time (when the live version's catch-up was measured)."""
    definition = (live_row.definition or {}) if live_row else {}
    spec_file = Path(pipeline.path)
    spec_text = spec_file.read_text() if spec_file.is_file() else ""
    speed = (definition.get("catch_up") or {}).get("events_per_s")
    estimate = records_held / speed if records_held is not None and speed else None
    return ReplayReport(
        sql_diff=_diff(definition.get("sql"), pipeline.sql_text, "sql"),
        spec_diff=_diff(definition.get("spec"), spec_text, "spec"),
        records_to_read=records_held,
        events_per_s=round(speed, 1) if speed else None,
        estimate_s=round(estimate, 1) if estimate is not None else None,
        history_gaps=list(history_gaps or []),
    )


def _diff(live: str | None, now: str, what: str) -> list[str]:
    if live is None or live == now:
        return []
    lines = list(
        difflib.unified_diff(
            live.splitlines(), now.splitlines(), f"live {what}", f"spec {what}", n=1, lineterm=""
        )
    )
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"... {len(lines) - MAX_DIFF_LINES} more diff lines"]
    return lines
