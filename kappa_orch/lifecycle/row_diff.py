"""A candidate against the live version, row by row (issue 29, point 6): the keys only in
the candidate (added), only in the live version (removed), and in both with another value
in a column they share (changed), counted and sampled by primary key, in the warehouse.
Part of the gate's parity report, and what the CLI prints under a failed gate (with the
rows of any other check that names them: `failing_rows`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, exists, func, inspect, literal_column, not_, or_, select

from kappa_orch.registry.serving import version_table
from kappa_orch.spec.model import PipelineSpec

SAMPLES = 5


def _text(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def row_diff(conn: Connection, spec: PipelineSpec, candidate_table: str, live_table: str) -> dict[str, Any]:
    """Added, removed and changed keys between the two tables (counts, samples by key;
    a changed key's sample shows each differing column as live -> candidate)."""
    candidate = version_table(spec, candidate_table)
    live_names = {c["name"] for c in inspect(conn).get_columns(live_table, schema=spec.target.schema_name)}
    keys = list(spec.target.primary_key)
    if not set(keys) <= live_names:
        return {"comparable": False, "why": "the primary key is not the live version's"}
    shared = [c.name for c in candidate.columns if c.name in live_names and c.name not in keys]
    live = version_table(spec, live_table).alias("live")
    mine = candidate.alias("candidate")
    same_key = and_(*[mine.c[k] == live.c[k] for k in keys])
    found: dict[str, Any] = {"comparable": True, "columns_compared": shared}
    for label, (side, other) in {"added": (mine, live), "removed": (live, mine)}.items():
        only = select(*[side.c[k] for k in keys]).where(
            not_(exists(select(1).select_from(other).where(same_key)))
        )
        found[label] = conn.execute(select(func.count()).select_from(only.subquery())).scalar_one()
        found[f"{label}_sample"] = [
            {k: _text(v) for k, v in row._mapping.items()} for row in conn.execute(only.limit(SAMPLES))
        ]
    differs = (
        or_(*[live.c[c].is_distinct_from(mine.c[c]) for c in shared]) if shared else literal_column("false")
    )
    changed = (
        select(*[live.c[k] for k in keys], *[live.c[c].label(f"live__{c}") for c in shared])
        .add_columns(*[mine.c[c].label(f"candidate__{c}") for c in shared])
        .select_from(live.join(mine, same_key))
        .where(differs)
    )
    found["changed"] = conn.execute(select(func.count()).select_from(changed.subquery())).scalar_one()
    found["changed_sample"] = [
        _changed(row._mapping, keys, shared) for row in conn.execute(changed.limit(SAMPLES))
    ]
    return found


def _changed(row: Any, keys: list[str], shared: list[str]) -> dict[str, Any]:
    sample = {k: _text(row[k]) for k in keys}
    for column in shared:
        before, after = row[f"live__{column}"], row[f"candidate__{column}"]
        if before != after:
            sample[column] = f"{_text(before)} -> {_text(after)}"
    return sample


def diff_summary(diff: dict[str, Any]) -> str:
    if not diff.get("comparable"):
        return f"rows not compared: {diff.get('why')}"
    return f"{diff['added']:,} key(s) added, {diff['removed']:,} removed, {diff['changed']:,} changed"


def failing_rows(metadata: dict[str, Any]) -> list[str]:
    """The rows a check's metadata names, one line each (by primary key, with the values
    that offend): expectations' sample rows, derive-parity's rows on one side only, the
    row diff's added, removed and changed keys."""
    lines = []
    for result in metadata.get("results") or []:
        if not result.get("success", True):
            for row in result.get("sample_rows") or []:
                lines.append(f"{result.get('expectation')}: {row}")
    for side in ("only_candidate", "only_live"):
        lines += [f"{side.replace('_', ' ')}: {row}" for row in metadata.get(f"{side}_sample") or []]
    diff = metadata.get("row_diff") or {}
    for kind in ("added", "removed", "changed"):
        lines += [f"{kind}: {row}" for row in diff.get(f"{kind}_sample") or []]
    return lines[: 3 * SAMPLES] if lines else []
