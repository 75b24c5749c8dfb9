"""What the SQL Gateway is asked to run, checked against Flink's own reading of it."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from kappa_orch.errors import SpecError

_INSERT_INTO = re.compile(r"^INSERT\s+INTO\s+(?:`([^`]+)`|([A-Za-z_][A-Za-z0-9_$]*))", re.IGNORECASE)
_PLANNED_SINK = re.compile(r"LogicalSink\(table=\[default_catalog\.default_database\.([^\],]+)\]")


def check_statement_set(plan: str, inserts: Sequence[str]) -> None:
    """Refuse a statement set whose plan writes anything but the INSERTs kappa_orch wrote:
    one sink per INSERT, the same tables, as many times. SQL that hides statements from
    kappa_orch's reading (e.g. behind a nested /* */ comment, which Flink does not nest)
    would otherwise add INSERTs of its own (into the alias's version table, or a source
    topic)."""
    written = Counter(
        m.group(1) or m.group(2) for m in (_INSERT_INTO.match(i.lstrip()) for i in inserts) if m
    )
    abstract = plan.split("== Optimized", 1)[0]
    planned = Counter(_PLANNED_SINK.findall(abstract))
    if planned != written:
        extra = sorted((planned - written).elements())
        raise SpecError(
            f"Flink reads the job's SQL as {sum(planned.values())} INSERT(s) into "
            f"{sorted(planned.elements())}, kappa_orch wrote {sum(written.values())} into "
            f"{sorted(written.elements())}"
            + (f": the SQL hides statements writing to {extra}" if extra else "")
            + "; nothing was submitted",
            "write the SELECT as one plain statement (Flink does not nest /* */ comments); "
            "`kappa-orch validate` shows how Flink reads it",
        )
