"""How `kappa-orch status` prints: one aligned table of every pipeline (health, lag,
checkpoint age, late records, dead letters, last swap, last check: lifecycle.status_table),
then each pipeline's versions
and what needs doing. Pure: lines and their colour; the CLI styles them (colours only on
a terminal)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from kappa_orch.lifecycle.status import PipelineStatus, VersionStatus
from kappa_orch.lifecycle.status_table import PIPELINE_HEADER, age, health, number, overview_rows
from kappa_orch.registry.states import CATCHING_UP

Line = tuple[str, str | None]  # text, colour (None: plain)

VERSION_HEADER = [
    "VERSION",
    "FINGERPRINT",
    "STATE",
    "JOB",
    "LAG",
    "CHECKPOINT",
    "LATE",
    "INPUT",
    "DEAD LETTERS",
    "TABLE",
]
NUMERIC = {"LAG", "CHECKPOINT", "LATE", "INPUT", "DEAD LETTERS"}


def table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Columns padded to their widest cell; numeric columns right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(w) if name in NUMERIC else cell.ljust(w)
            for cell, w, name in zip(cells, widths, header, strict=True)
        ]
        return (indent + "  ".join(padded)).rstrip()

    return [line(header)] + [line(row) for row in rows]


def overview(statuses: Sequence[PipelineStatus], now: datetime) -> list[Line]:
    """The table of every pipeline, each row coloured by its health."""
    rows = overview_rows(statuses, now)
    header, *body = table(PIPELINE_HEADER, [cells for cells, _ in rows])
    return [(header, None), *zip(body, [colour for _, colour in rows], strict=True)]


def _version_row(v: VersionStatus) -> list[str]:
    return [
        f"v{v.version}",
        v.fingerprint,
        "degraded" if v.degraded else v.state,
        v.job_state or "-",
        number(v.lag),
        age(v.checkpoint_age_s),
        number(v.late_total),
        number(v.input),
        number(v.dead_lettered),
        v.physical_table,
    ]


def catching_up(v: VersionStatus, before: VersionStatus | None, elapsed_s: float | None) -> str | None:
    """A catching-up version's progress: the share of the log its job has read (its
    counters against its lag, both as of its last checkpoint), and with an earlier reading
    (`status --watch`: `elapsed_s` since it, 0 on the first round) its rate and the time
    left; None for any other version."""
    if v.state != CATCHING_UP or v.lag is None:
        return None
    total = v.input + v.lag
    text = (
        f"v{v.version} catching up: {v.input / total if total else 1:.0%} ({v.input:,} of {total:,} records)"
    )
    if elapsed_s is None:
        return text + ", rate and time left with --watch"
    if before is None or elapsed_s <= 0 or v.input <= before.input:
        return text
    rate = (v.input - before.input) / elapsed_s
    return text + f", {rate:,.0f} records/s, about {age(v.lag / rate)} left"


def details(
    s: PipelineStatus, before: PipelineStatus | None = None, elapsed_s: float | None = None
) -> list[Line]:
    """One pipeline: its sync verdict, versions, catch-up progress (`before`: the reading
    `elapsed_s` earlier, under --watch), warnings, column changes and errors."""
    if s.degraded:
        sync = "DEGRADED: its job is not running"
    elif s.in_sync:
        sync = "in sync"
    else:
        sync = f"spec fingerprint {s.desired_fingerprint} not live"
    live = f"v{s.live_version}" if s.live_version else "none"
    lines: list[Line] = [
        (
            f"{s.pipeline}: alias {s.alias} -> {live} ({sync}); dead letters -> {s.dead_letter_topic}",
            health(s)[1],
        )
    ]
    if s.versions:
        header, *body = table(VERSION_HEADER, [_version_row(v) for v in s.versions], indent="  ")
        lines.append((header, None))
        lines += [(text, "red" if v.degraded else None) for text, v in zip(body, s.versions, strict=True)]
    earlier = {v.version: v for v in (before.versions if before else [])}
    for v in s.versions:
        progress = catching_up(v, earlier.get(v.version) if before else None, elapsed_s)
        lines += [(f"  {progress}", "cyan")] if progress else []
    lines += [(f"  WARNING: {w}", "yellow") for w in s.warnings]
    if s.column_changes:
        lines.append((f"  columns, spec against live: {', '.join(s.column_changes)}", None))
    lines += [
        (f"  v{v.version} error: {v.error.splitlines()[0][:160]}", "red") for v in s.versions if v.error
    ]
    for v in s.versions:
        lines += [(f"  v{v.version} failing rows:", "red")] if v.gate_rows else []
        lines += [(f"    {row[:200]}", "red") for row in v.gate_rows]
    return lines


def render(
    statuses: Sequence[PipelineStatus],
    now: datetime,
    before: Sequence[PipelineStatus] | None = None,
    elapsed_s: float | None = None,
) -> list[Line]:
    """The whole `status` output (`before`: the reading `elapsed_s` earlier, under --watch)."""
    lines = overview(statuses, now)
    earlier = {s.pipeline: s for s in before or []}
    for s in statuses:
        lines += [("", None), *details(s, earlier.get(s.pipeline), elapsed_s)]
    return lines
