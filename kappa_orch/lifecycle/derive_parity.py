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
nothing.

When the derivation computes columns or filters rows, the live table "through the
derivation" is what Flink makes of it (lifecycle.derive): at each comparison both tables
are copied in one snapshot, the live copy is put through the same checked derivation job,
and the candidate's copy is compared with its result, every column."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, Table, except_all, func, insert, literal_column, select, text

from kappa_orch.errors import KappaError
from kappa_orch.lifecycle import derive
from kappa_orch.lifecycle.services import Services
from kappa_orch.registry import store as registry
from kappa_orch.registry.serving import create_version_table, drop_version_table, version_table
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
    services: Services, pipeline: LoadedPipeline, row: registry.VersionRow, live: LoadedPipeline
) -> tuple[bool, str, dict[str, Any]]:
    """(passed, summary, metadata) of the check for `row` against the live version its
    cheap start came from (`live`: that version's pipeline)."""
    started = (row.definition or {}).get("cheap_start")
    if not started or started.get("fell_back"):
        return True, "replayed from the log: nothing was derived", {}
    from_version = int(started["from_version"])
    with registry.session(services.warehouse) as conn:
        source = next(r for r in registry.pipeline_versions(conn, pipeline.name) if r.version == from_version)
    tables = (
        version_table(pipeline.spec, row.physical_table),
        version_table(live.spec, source.physical_table),
    )
    if derive.through_flink(started):
        found, rows, attempts = _through_flink(services, (pipeline, live), tables, started)
    else:
        derivation = {c: s for c, s in (started.get("derivation") or {}).items() if s is not None}
        found, rows, attempts = _until_quiet(services, lambda conn: differences(conn, tables, derivation))
    metadata = {
        **found,
        "from_version": from_version,
        "rows": rows,
        "attempts": attempts,
        "kind": started["kind"],
        **({"slice_check": started["slice_check"]} if started.get("slice_check") else {}),
    }
    if found.get("problem"):
        return False, f"the derivation could not be checked: {found['problem']}", metadata
    if found["only_candidate"] or found["only_live"]:
        summary = (
            f"{found['only_candidate']} row(s) only in the candidate and {found['only_live']} only in "
            f"v{from_version} derived, after {attempts} comparison(s) over {QUIET_WAIT_S:.0f}s"
        )
        return False, summary, metadata
    how = (
        "derived by Flink through its expressions"
        if derive.through_flink(started)
        else "through the derivation"
    )
    summary = f"{rows:,} rows equal v{from_version}'s {how} ({started['kind']} start)"
    sliced = started.get("slice_check") or {}
    if sliced.get("passed"):
        records = sliced["records"]
        summary += f"; the newest {records:,} records before the fence, replayed, gave the same rows"
    return True, summary, metadata


def _until_quiet(
    services: Services, compare: Callable[[Connection], dict[str, Any]]
) -> tuple[dict[str, Any], int, int]:
    """Compare until no difference is found or the wait runs out: (differences, the
    candidate's rows then, attempts)."""
    deadline = time.monotonic() + QUIET_WAIT_S
    attempts = 0
    while True:
        attempts += 1
        with services.warehouse.begin() as conn:
            found = compare(conn)
            rows = int(found.pop("rows", 0))
        if (not found["only_candidate"] and not found["only_live"]) or time.monotonic() > deadline:
            return found, rows, attempts
        time.sleep(3.0)


def _through_flink(
    services: Services,
    pipelines: tuple[LoadedPipeline, LoadedPipeline],
    tables: tuple[Table, Table],
    started: Mapping[str, Any],
) -> tuple[dict[str, Any], int, int]:
    """The candidate's rows against the live rows derived by Flink, each time from one
    snapshot of both tables (see the module's docstring)."""
    pipeline, live = pipelines
    candidate, live_table = tables
    base = candidate.name
    snapshot_name, derived_name = f"{base}__parity", f"{base}__parity_derived"
    snapshot, derived = (
        version_table(pipeline.spec, snapshot_name),
        version_table(pipeline.spec, derived_name),
    )
    everything = {c.name: c.name for c in candidate.columns}
    try:
        prepared = derive.prepare(pipelines, (f"{base}__parity_live", derived_name), started, services)
        if isinstance(prepared, str):
            return {"problem": prepared, "only_candidate": 0, "only_live": 0}, 0, 0
        ready = prepared

        def compare(conn: Connection) -> dict[str, Any]:
            _snapshots(services, (candidate, snapshot, derived), ready, (live, live_table.name))
            derive.run(ready, pipeline, services)
            found = differences(conn, (snapshot, derived), everything)
            found["rows"] = conn.execute(select(func.count()).select_from(snapshot)).scalar_one()
            return found

        with services.warehouse.begin() as conn:
            create_version_table(conn, pipeline.spec, snapshot_name)
        try:
            return _until_quiet(services, compare)
        finally:
            derive.drop_staging(ready, live, services)
    except KappaError as exc:
        return {"problem": exc.problem, "only_candidate": 0, "only_live": 0}, 0, 0
    finally:
        with services.warehouse.begin() as conn:
            drop_version_table(conn, pipeline.spec, snapshot_name)
            drop_version_table(conn, pipeline.spec, derived_name)


def _snapshots(
    services: Services,
    tables: tuple[Table, Table, Table],
    prepared: derive.Derivation,
    live: tuple[LoadedPipeline, str],
) -> None:
    """The candidate's rows and the live rows copied in one snapshot (REPEATABLE READ),
    the derived table emptied for the derivation job."""
    candidate, snapshot, derived = tables
    with services.warehouse.begin() as conn:
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        conn.execute(snapshot.delete())
        conn.execute(derived.delete())
        names = [c.name for c in candidate.columns]
        conn.execute(insert(snapshot).from_select(names, select(*[candidate.c[n] for n in names])))
        derive.fill(conn, prepared, live[0], live[1])
