"""Derive-parity: a version started cheaply is checked against the live version before any
reader sees it (issue 26, point 4).

A candidate started from the live version's savepoint (lifecycle.cheap) holds the live
table's rows copied through its derivation, then what its own job wrote since the fence.
Both jobs read the same log from the same offsets with the same state, so once both have
written the same input the candidate's table must equal the live table projected through
the derivation, row for row (EXCEPT ALL both ways, in the warehouse). They write at their
own checkpoints, so the comparison is repeated until both tables agree (a quiet point) or
the wait runs out; a difference that stays fails the check, with sample rows, and the
candidate replays the log instead (reprocess). A version that replayed passes: it derived
nothing."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Table, except_all, func, literal_column, select

from kappa_orch.registry import store as registry
from kappa_orch.registry.serving import version_table
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.model import LoadedPipeline

DERIVE_PARITY = "derive_parity"
DESCRIPTION = (
    "A version started from the live version's savepoint instead of a replay equals the live "
    "table through its derivation, row for row, at a quiet point (a version that replayed passes)."
)
# how long the comparison waits for both jobs to have written the same input
QUIET_WAIT_S = 60.0
SAMPLE_ROWS = 5


def differences(
    conn: Connection, tables: tuple[Table, Table], derivation: Mapping[str, str]
) -> dict[str, Any]:
    """Rows of the candidate not in the derived live table and the other way round (counts
    and a few samples of each), over the derived columns."""
    candidate, live = tables
    mine = select(*[candidate.c[c] for c in derivation])
    theirs = select(*[live.c[s].label(c) for c, s in derivation.items()])
    found: dict[str, Any] = {}
    for label, query in (
        ("only_candidate", except_all(mine, theirs)),
        ("only_live", except_all(theirs, mine)),
    ):
        rows = query.subquery()
        found[label] = conn.execute(select(func.count()).select_from(rows)).scalar_one()
        sample: list[Any] = list(
            conn.execute(select(literal_column("*")).select_from(rows).limit(SAMPLE_ROWS))
        )
        found[f"{label}_sample"] = [[str(v) for v in r] for r in sample]
    return found


def derive_parity(
    warehouse: WarehouseResource, pipeline: LoadedPipeline, row: registry.VersionRow, live: LoadedPipeline
) -> tuple[bool, str, dict[str, Any]]:
    """(passed, summary, metadata) of the check for `row` against the live version its
    cheap start came from (`live`: that version's pipeline)."""
    started = (row.definition or {}).get("cheap_start")
    if not started or started.get("fell_back"):
        return True, "replayed from the log: nothing was derived", {}
    derivation = {c: s for c, s in (started.get("derivation") or {}).items() if s is not None}
    from_version = int(started["from_version"])
    with registry.session(warehouse) as conn:
        source = next(r for r in registry.pipeline_versions(conn, pipeline.name) if r.version == from_version)
    tables = (
        version_table(pipeline.spec, row.physical_table),
        version_table(live.spec, source.physical_table),
    )
    deadline = time.monotonic() + QUIET_WAIT_S
    attempts = 0
    while True:
        attempts += 1
        with warehouse.begin() as conn:
            found = differences(conn, tables, derivation)
            rows = conn.execute(select(func.count()).select_from(tables[0])).scalar_one()
        if (not found["only_candidate"] and not found["only_live"]) or time.monotonic() > deadline:
            break
        time.sleep(3.0)
    metadata = {
        **found,
        "from_version": from_version,
        "rows": rows,
        "attempts": attempts,
        "kind": started["kind"],
    }
    if found["only_candidate"] or found["only_live"]:
        summary = (
            f"{found['only_candidate']} row(s) only in the candidate and {found['only_live']} only in "
            f"v{from_version} derived, after {attempts} comparison(s) over {QUIET_WAIT_S:.0f}s"
        )
        return False, summary, metadata
    summary = f"{rows:,} rows equal v{from_version}'s through the derivation ({started['kind']} start)"
    return True, summary, metadata
