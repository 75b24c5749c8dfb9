"""Replay checks that compare a candidate with the live version it would replace: it
read every offset the live version read (history that is gone cannot pass), and the
values of the rows both hold (per-column sums), not only their counts. And a log that was
replaced under a version: a source topic deleted and created again (its offsets start at
0 again, its topic id is new) while the version's table holds the rows of the old one.

Both read what the versions' own jobs recorded (`input_counts`: first and last offset per
source partition) and the version tables; pure verdicts over those figures."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, and_, exists, func, inspect, select

from kappa_orch.registry import store as registry
from kappa_orch.registry.serving import version_table
from kappa_orch.spec.model import PipelineSpec

COMPLETE_HISTORY = "complete_history"
NUMERIC_TYPES = ("INT", "BIGINT", "DOUBLE", "DECIMAL")


def _missed(
    live: Sequence[registry.InputCount], starts: Callable[[registry.InputCount], int | None], label: str
) -> list[dict[str, Any]]:
    """Per source partition the live version read, the offsets before `starts` (a later
    first offset: the candidate's, or the log's now) that it read (pure)."""
    gaps = []
    for counted in sorted(live, key=lambda c: (c.source_topic, c.kafka_partition)):
        start = starts(counted)
        if start is not None and start > counted.first_offset:
            gaps.append(
                {
                    "topic": counted.source_topic,
                    "partition": counted.kafka_partition,
                    "live_from": counted.first_offset,
                    label: start,
                    "missing": start - counted.first_offset,
                }
            )
    return gaps


def history_gaps(
    candidate: Sequence[registry.InputCount], live: Sequence[registry.InputCount]
) -> list[dict[str, Any]]:
    """Per source partition the live version read, the offsets it read that the candidate
    did not (it started later: the oldest records were deleted meanwhile) (pure)."""
    started = {(c.source_topic, c.kafka_partition): c.first_offset for c in candidate}

    def first(counted: registry.InputCount) -> int:
        # a partition the candidate read nothing of: all the live version read is missed
        return started.get((counted.source_topic, counted.kafka_partition), counted.last_offset + 1)

    return _missed(live, first, "candidate_from")


def deleted_since(
    live: Sequence[registry.InputCount], log_starts: dict[str, dict[int, int]]
) -> list[dict[str, Any]]:
    """Per source partition, the offsets the live version read that the log no longer holds
    (its first offset now is past them): what a replay would miss (pure; for `plan`)."""
    return _missed(live, lambda c: log_starts.get(c.source_topic, {}).get(c.kafka_partition), "log_from")


def complete_history_verdict(
    spec: PipelineSpec,
    version: int,
    live_version: int | None,
    candidate: Sequence[registry.InputCount],
    live: Sequence[registry.InputCount],
) -> tuple[bool, str, dict[str, Any]]:
    """(passed, summary, metadata) of `complete_history` (pure)."""
    if spec.start.position != "earliest":
        return True, "the spec starts at the latest offsets: no history is replayed", {}
    if live_version is None or live_version == version:
        return True, "no other live version to compare with", {}
    shared = {c.source_topic for c in candidate} | {s.topic for s in spec.sources}
    gaps = history_gaps(candidate, [c for c in live if c.source_topic in shared])
    if not gaps:
        return True, f"read every offset v{live_version} read", {"gaps": []}
    missing = sum(g["missing"] for g in gaps)
    where = ", ".join(
        f"{g['topic']}[{g['partition']}] offsets {g['live_from']}..{g['candidate_from'] - 1}"
        for g in gaps[:5]
    )
    summary = (
        f"v{version} did not read {missing:,} record(s) that live v{live_version} read ({where}): they "
        "were deleted from the log (retention, or delete-records) before the replay, so its rows are "
        "computed from part of the history. Restore the history (a bootstrap snapshot of the deleted "
        f"days, see docs/writing-specs.md), or accept the gap on purpose: kappa-orch reprocess {spec.name} "
        f'--accept {COMPLETE_HISTORY} --reason "..."'
    )
    return False, summary, {"gaps": gaps, "missing_records": missing}


def value_sums(
    conn: Connection, spec: PipelineSpec, candidate_table: str, live_table: str
) -> dict[str, dict[str, float]]:
    """Per numeric target column both versions have, its sum in each over the keys both hold."""
    candidate = version_table(spec, candidate_table)
    live = version_table(spec, live_table)
    # the live version's own columns: a column the candidate adds is not compared
    held = {c["name"] for c in inspect(conn).get_columns(live_table, schema=spec.target.schema_name)}
    columns = [c.name for c in spec.target.columns if c.type.startswith(NUMERIC_TYPES) and c.name in held]
    columns = [c for c in columns if c not in spec.target.primary_key]
    if not columns:
        return {}
    match = and_(*[candidate.c[k] == live.c[k] for k in spec.target.primary_key])
    sums = {}
    for table, other in ((candidate, live), (live, candidate)):
        shared = exists(select(1).select_from(other).where(match))
        row = conn.execute(
            select(*[func.coalesce(func.sum(table.c[c]), 0) for c in columns]).where(shared)
        ).one()
        sums[table.name] = dict(zip(columns, (float(v) for v in row), strict=True))
    return {c: {"candidate": sums[candidate.name][c], "live": sums[live.name][c]} for c in columns}


def value_changes(
    sums: dict[str, dict[str, float]], bound: float | None
) -> tuple[dict[str, float], list[str]]:
    """Each column's relative change of its sum, and the columns beyond the bound (pure)."""
    changes = {}
    for column, pair in sums.items():
        base = abs(pair["live"])
        changes[column] = (
            abs(pair["candidate"] - pair["live"]) / base if base else float(pair["candidate"] != 0)
        )
    over = [
        f"{c} sums {sums[c]['candidate']:,.6g} vs {sums[c]['live']:,.6g} live over the shared keys "
        f"({changes[c]:.2%}; allowed {bound:.2%}: gate.max_value_change)"
        for c in changes
        if bound is not None and changes[c] > bound
    ]
    return {c: round(v, 6) for c, v in changes.items()}, over


def replaced_logs(row: registry.VersionRow, topic_ids: Mapping[str, str | None]) -> list[dict[str, Any]]:
    """The source topics of a version whose Kafka topic id is not the one its job started
    with (deleted, or deleted and created again): topic, was, now (None: no such topic).
    A topic not in `topic_ids` was not asked; a version deployed before ids were recorded
    has nothing to compare (pure)."""
    return [
        {"topic": topic, "was": was, "now": topic_ids[topic]}
        for topic, was in sorted((row.source_topic_ids or {}).items())
        if topic in topic_ids and topic_ids[topic] != was
    ]


def replaced_log_problem(pipeline: str, row: registry.VersionRow, replaced: Sequence[dict[str, Any]]) -> str:
    """What a replaced log means for the version, and the two ways out (replay, or accept)."""
    what = "; ".join(
        f"source topic {r['topic']} was deleted"
        + (f" and created again (topic id {r['was']} -> {r['now']})" if r["now"] else f" (id {r['was']})")
        for r in replaced
    )
    return (
        f"{what} since v{row.version}'s job started: its table holds rows of the old log and the "
        f"new log's offsets start again. Replay the new log into a new version: kappa-orch "
        f"reprocess {pipeline} (add --accept parity_with_live --reason ... if it differs from "
        f"v{row.version} on purpose), or keep v{row.version} as it is: kappa-orch accept-log "
        f"{pipeline} --version {row.version} --reason ..."
    )
