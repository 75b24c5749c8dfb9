"""The platform at a glance: one row per pipeline (alias, live version, health, lag,
checkpoint age, late records, dead letters, last swap, last scheduled check), as
`kappa-orch status` prints it and the Dagster UI's platform page shows it (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from kappa_orch.lifecycle.status import PipelineStatus, VersionStatus

PIPELINE_HEADER = [
    "PIPELINE",
    "ALIAS",
    "LIVE",
    "HEALTH",
    "LAG",
    "CHECKPOINT",
    "LATE",
    "DEAD LETTERS",
    "LAST SWAP",
    "LAST CHECK",
]


def number(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f}m" if seconds < 7200 else f"{seconds / 3600:.1f}h"


def health(s: PipelineStatus) -> tuple[str, str | None]:
    """The pipeline's one-word health and its colour."""
    if s.live_version is None:
        return "not deployed", "yellow"
    if s.degraded:
        return "DEGRADED", "red"
    if s.failed_checks:
        return "CHECK FAILED", "red"
    if not s.in_sync:
        return "behind spec", "yellow"
    return ("in sync", "green") if not s.warnings else ("in sync, warnings", "yellow")


def last_swap(s: PipelineStatus, now: datetime) -> str:
    swap = s.last_swap
    if swap is None:
        return "-"
    ago = age((now - _when(swap["at"])).total_seconds())
    source = f"v{swap['from']}" if swap["from"] is not None else "none"
    return f"{source} -> v{swap['to']} {swap['reason']}, {ago} ago"


def _when(text: str) -> datetime:
    """An ISO time as the registry keeps it (a time without a zone is UTC)."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def last_check(s: PipelineStatus, now: datetime) -> str:
    """A failed scheduled check first, else the one that ran last: its name, verdict, age."""
    dated = [c for c in s.checks if c["at"]]
    if not dated:
        return "-"
    check = min(dated, key=lambda c: (c["passed"], -_when(c["at"]).timestamp()))
    verdict = "passed" if check["passed"] else "FAILED"
    return f"{check['check']} {verdict}, {age((now - _when(check['at'])).total_seconds())} ago"


def live_of(s: PipelineStatus) -> VersionStatus | None:
    return next((v for v in s.versions if v.version == s.live_version), None)


def overview_rows(statuses: Sequence[PipelineStatus], now: datetime) -> list[tuple[list[str], str | None]]:
    """Every pipeline's row (cells under PIPELINE_HEADER) and the colour of its health."""
    rows = []
    for s in statuses:
        live = live_of(s)
        word, colour = health(s)
        cells = [
            s.pipeline,
            s.alias,
            f"v{s.live_version}" if s.live_version else "-",
            word,
            number(live.lag if live else None),
            age(live.checkpoint_age_s if live else None),
            number(live.late_total if live else None),
            number(live.dead_lettered if live else None),
            last_swap(s, now),
            last_check(s, now),
        ]
        rows.append((cells, colour))
    return rows
