"""The gate a candidate passes before its alias may move: the spec's Great Expectations
suite, unique primary keys, and parity with the live version. Each check returns an
outcome with metadata a person can act on (which expectation, how many rows, samples)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, exists, func, or_, select

from kappa_orch.errors import OperationRefused
from kappa_orch.lifecycle.derive_parity import DERIVE_PARITY
from kappa_orch.lifecycle.derive_parity import DESCRIPTION as DERIVE_DESCRIPTION
from kappa_orch.lifecycle.row_diff import diff_summary, row_diff
from kappa_orch.plan.replay_checks import (
    COMPLETE_HISTORY,
    complete_history_verdict,
    value_changes,
    value_sums,
)
from kappa_orch.registry import store as registry
from kappa_orch.registry.serving import version_table
from kappa_orch.spec.checks import expectation_class_name
from kappa_orch.spec.model import PipelineSpec

EXPECTATIONS = "expectations"
UNIQUE_KEY = "unique_primary_key"
PARITY = "parity_with_live"
INPUT_BALANCE = "input_balance"
NO_LATE_RECORDS = "no_late_records"
CHECK_DESCRIPTIONS = {
    EXPECTATIONS: "The spec's Great Expectations suite on the version's table.",
    UNIQUE_KEY: "No duplicate and no NULL primary keys in the version's table.",
    PARITY: (
        "Row count, key coverage and (with gate.max_value_change) each numeric column's sum over the "
        "shared keys within the spec's tolerance of the live version."
    ),
    COMPLETE_HISTORY: (
        "The candidate read every offset the live version read, per source partition (from the "
        "jobs' own counters): history deleted from the log since cannot pass unless accepted."
    ),
    INPUT_BALANCE: (
        "At the gate: every record the job read is parsed or dead-lettered (input = parsed + "
        "dead-lettered). Afterwards the stream observer plots the balance as it goes "
        "(input_records, dead_lettered) and live_input_balance checks it on the alias."
    ),
    NO_LATE_RECORDS: (
        "No more records arrived late (event time behind the watermark) than "
        "gate.max_late_records: counted exactly, in input records, as the job dead-letters "
        "them (reason `late`), plus any a Flink operator dropped itself (numLateRecordsDropped)."
    ),
}
CHECK_DESCRIPTIONS[DERIVE_PARITY] = DERIVE_DESCRIPTION
# the checks of every version's gate, in the order they are reported
GATE_CHECKS = (
    EXPECTATIONS,
    UNIQUE_KEY,
    PARITY,
    COMPLETE_HISTORY,
    INPUT_BALANCE,
    NO_LATE_RECORDS,
    DERIVE_PARITY,
)
# checks whose failure means the table is wrong, whatever a person thinks of the data: an
# operator cannot accept a candidate that failed one of them
STRUCTURAL_CHECKS = frozenset({UNIQUE_KEY, INPUT_BALANCE, NO_LATE_RECORDS, DERIVE_PARITY})


@dataclass(frozen=True)
class Outcome:
    name: str
    passed: bool
    summary: str
    metadata: dict[str, Any] = field(default_factory=dict)
    # a failed non-structural check an operator accepted: "<who>: <reason>"
    accepted: str | None = None

    @property
    def lets_through(self) -> bool:
        return self.passed or self.accepted is not None


def check_acceptance(accept: Sequence[str], reason: str | None) -> None:
    """Refuse an acceptance that names an unknown or a structural check, or has no reason."""

    unknown = [name for name in accept if name not in GATE_CHECKS]
    if unknown:
        raise OperationRefused(
            f"--accept names unknown check(s) {unknown}",
            f"accept one of the non-structural checks: {sorted(set(GATE_CHECKS) - STRUCTURAL_CHECKS)}",
        )
    structural = sorted(set(accept) & STRUCTURAL_CHECKS)
    if structural:
        raise OperationRefused(
            f"{structural} cannot be accepted: a failure there means the table itself is wrong "
            "(duplicate keys, lost input or records dropped as late), not that the data changed",
            "fix the spec or the data and reprocess",
        )
    if accept and not (reason or "").strip():
        raise OperationRefused("accepting a failed check needs a reason", 'add --reason "why this is right"')


def accepted(
    outcomes: Sequence[Outcome], accept: Sequence[str], by: str, reason: str | None
) -> list[Outcome]:
    """The outcomes with the failed ones named in `accept` marked accepted (pure)."""
    from dataclasses import replace

    return [
        replace(o, accepted=f"{by}: {reason}") if (not o.passed and o.name in accept) else o for o in outcomes
    ]


SAMPLES = 5


def _json_row(row: Any) -> Any:
    """A bad row's key columns and value, as JSON can carry them (dates and decimals as text)."""
    if not isinstance(row, dict):
        return row
    return {k: v if isinstance(v, str | int | float | bool) or v is None else str(v) for k, v in row.items()}


def _detail(item: Any, day_column: str | None, failing_days: set[str]) -> dict[str, Any] | None:
    """One expectation's result: counts, sample values, sample rows by key; the days of
    its unexpected rows are added to `failing_days`."""
    config = item.expectation_config
    if config is None:
        return None
    kwargs = {k: v for k, v in (config.kwargs or {}).items() if k != "batch_id"}
    detail: dict[str, Any] = {
        "expectation": config.type,
        "kwargs": kwargs,
        "success": bool(item.success),
        "unexpected_count": item.result.get("unexpected_count"),
        "sample_unexpected": (item.result.get("partial_unexpected_list") or [])[:SAMPLES],
    }
    rows = item.result.get("partial_unexpected_index_list") or item.result.get("unexpected_index_list")
    if rows:
        detail["sample_rows"] = [_json_row(r) for r in rows[:SAMPLES]]
    raised = (item.exception_info or {}).get("raised_exception")
    if raised:
        detail["exception"] = str((item.exception_info or {}).get("exception_message"))[:500]
    for row in item.result.get("unexpected_index_list") or [] if day_column else []:
        if isinstance(row, dict) and row.get(day_column) is not None:
            failing_days.add(str(row[day_column]))
    return detail


def expectations_outcome(
    url: str, spec: PipelineSpec, physical_table: str, *, day_column: str | None = None
) -> Outcome:
    """Run the spec's expectations with an ephemeral GX context over the warehouse.

    With `day_column` (a batch table), the days of the unexpected rows are collected
    too (metadata `failing_days`), so that exactly those days can be recomputed."""
    if not spec.checks:
        return Outcome(EXPECTATIONS, True, "no expectations declared")
    import great_expectations as gx
    import great_expectations.expectations as gxe

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}  # type: ignore[assignment]
    source = context.data_sources.add_postgres(name="kappa_warehouse", connection_string=url)
    asset = source.add_table_asset(
        name=physical_table, table_name=physical_table, schema_name=spec.target.schema_name
    )
    batch = asset.add_batch_definition_whole_table("whole_table").get_batch()
    suite = gx.ExpectationSuite(name=f"{spec.name}_gate")
    for check in spec.checks:
        suite.add_expectation(getattr(gxe, expectation_class_name(check.expectation))(**check.kwargs))
    # the bad rows are named by their primary key (and, on a batch table, their day)
    keys = list(dict.fromkeys([*spec.target.primary_key, *([day_column] if day_column else [])]))
    result_format = {
        "result_format": "COMPLETE" if day_column else "SUMMARY",
        "unexpected_index_column_names": keys,
        "partial_unexpected_count": SAMPLES,
        "return_unexpected_index_query": False,
    }
    result = batch.validate(suite, result_format=result_format)
    failures, details = [], []
    failing_days: set[str] = set()
    for item in result.results:
        detail = _detail(item, day_column, failing_days)
        if detail is None:
            continue
        details.append(detail)
        if not detail["success"]:
            failures.append(
                f"{detail['expectation']}({detail['kwargs']}): {detail['unexpected_count']} unexpected"
            )
    summary = "all expectations met" if not failures else "; ".join(failures)
    metadata: dict[str, Any] = {"results": details, "failed": len(failures)}
    if day_column is not None:
        metadata["failing_days"] = sorted(failing_days)
    return Outcome(EXPECTATIONS, not failures, summary, metadata)


def unique_key_outcome(conn: Connection, spec: PipelineSpec, physical_table: str) -> Outcome:
    table = version_table(spec, physical_table)
    keys = [table.c[k] for k in spec.target.primary_key]
    rows = conn.execute(select(func.count()).select_from(table)).scalar_one()
    distinct = conn.execute(
        select(func.count()).select_from(select(*keys).distinct().subquery())
    ).scalar_one()
    nulls = conn.execute(
        select(func.count()).select_from(table).where(or_(*[k.is_(None) for k in keys]))
    ).scalar_one()
    duplicates = rows - distinct
    passed = duplicates == 0 and nulls == 0
    summary = f"{rows} rows, {duplicates} duplicate keys, {nulls} NULL keys"
    return Outcome(
        UNIQUE_KEY, passed, summary, {"rows": rows, "duplicate_keys": duplicates, "null_keys": nulls}
    )


def parity_outcome(
    conn: Connection, spec: PipelineSpec, candidate_table: str, live_table: str | None
) -> Outcome:
    if live_table is None or live_table == candidate_table:
        return Outcome(PARITY, True, "no other live version to compare with")
    candidate = version_table(spec, candidate_table)
    live = version_table(spec, live_table)
    n_candidate = conn.execute(select(func.count()).select_from(candidate)).scalar_one()
    n_live = conn.execute(select(func.count()).select_from(live)).scalar_one()
    match = and_(*[candidate.c[k] == live.c[k] for k in spec.target.primary_key])
    covered = conn.execute(
        select(func.count()).select_from(live).where(exists(select(1).select_from(candidate).where(match)))
    ).scalar_one()
    change = abs(n_candidate - n_live) / max(n_live, 1)
    coverage = covered / n_live if n_live else 1.0
    gate = spec.gate
    sums = value_sums(conn, spec, candidate_table, live_table)
    changes, values_over = value_changes(sums, gate.max_value_change)
    problems = []
    if change > gate.max_row_count_change:
        problems.append(f"row count changed by {change:.1%} (allowed {gate.max_row_count_change:.1%})")
    if coverage < gate.min_key_coverage:
        problems.append(f"covers {coverage:.1%} of the live keys (needs {gate.min_key_coverage:.1%})")
    problems += values_over
    diff = row_diff(conn, spec, candidate_table, live_table)
    summary = "; ".join(problems) or (
        f"{n_candidate} rows vs {n_live} live ({change:.1%} change), {coverage:.1%} of live keys covered"
    )
    summary += f"; {diff_summary(diff)}"
    return Outcome(
        PARITY,
        not problems,
        summary,
        {
            "candidate_rows": n_candidate,
            "live_rows": n_live,
            "row_count_change": round(change, 4),
            "key_coverage": round(coverage, 4),
            "value_sums": sums,
            "value_change": changes,
            "live_table": live_table,
            "row_diff": diff,
        },
    )


def complete_history_outcome(conn: Connection, spec: PipelineSpec, version: int, live: int | None) -> Outcome:
    """From both versions' own counters: the candidate's first offset per source partition
    is not past the live version's (replay_checks)."""
    candidate = registry.input_counts_of(conn, spec.name, version)
    live_counts = registry.input_counts_of(conn, spec.name, live) if live is not None else []
    passed, summary, metadata = complete_history_verdict(spec, version, live, candidate, live_counts)
    return Outcome(COMPLETE_HISTORY, passed, summary, metadata)


def input_balance_outcome(conn: Connection, spec: PipelineSpec, version: int) -> Outcome:
    """From the job's own per-partition counters: the records between the first and last
    offset it read (input) all went somewhere, parsed into the SQL or to the dead-letter topic."""
    counts = registry.input_counts_of(conn, spec.name, version)
    partitions: list[dict[str, Any]] = []
    problems: list[str] = []
    for c in counts:
        span = c.last_offset - c.first_offset + 1
        partitions.append(
            {
                "topic": c.source_topic,
                "partition": c.kafka_partition,
                "input": span,
                "parsed": c.parsed,
                "dead_lettered": c.dead_lettered,
                "offsets": [c.first_offset, c.last_offset],
            }
        )
        if c.parsed + c.dead_lettered != span:
            problems.append(
                f"{c.source_topic}[{c.kafka_partition}]: input {span} "
                f"(offsets {c.first_offset}..{c.last_offset}) != "
                f"parsed {c.parsed} + dead-lettered {c.dead_lettered}"
            )
    total_input = sum(c.last_offset - c.first_offset + 1 for c in counts)
    parsed = sum(c.parsed for c in counts)
    dead = sum(c.dead_lettered for c in counts)
    summary = "; ".join(problems) or (
        f"input {total_input:,} = parsed {parsed:,} + dead-lettered {dead:,} (to {spec.dead_letter_topic})"
        if counts
        else "no input read yet"
    )
    return Outcome(
        INPUT_BALANCE,
        not problems,
        summary,
        {
            "input": total_input,
            "parsed": parsed,
            "dead_lettered": dead,
            "dead_letter_topic": spec.dead_letter_topic,
            "partitions": partitions,
        },
    )


# the late records a job dead-lettered (input_counts.late), beside Flink's own operator
# counters: an operator only drops records itself if the routing missed it
ROUTED_LATE = "dead-lettered as late"


def late_records(routed: int, dropped_by_flink: dict[str, int] | None) -> dict[str, int] | None:
    """Late records by where they went: dead-lettered by the job (exact, input records) and,
    only if any, dropped by a Flink operator itself (its counter). None: Flink could not be
    asked, so a drop the routing missed could not be seen."""
    if dropped_by_flink is None:
        return None
    return {ROUTED_LATE: routed, **{op: n for op, n in sorted(dropped_by_flink.items()) if n}}


def late_records_outcome(spec: PipelineSpec, late: dict[str, int] | None) -> Outcome:
    """From `late_records` (None: the job could not be asked)."""
    if late is None:
        return Outcome(
            NO_LATE_RECORDS,
            False,
            "the job's late-record counters could not be read (is its Flink job running?)",
        )
    total = sum(late.values())
    allowed = spec.gate.max_late_records
    by_cause = ", ".join(f"{n:,} {_cause(where)}" for where, n in late.items() if n)
    if total > allowed:
        summary = (
            f"{total:,} records arrived late ({by_cause}); "
            f"allowed {allowed:,} (gate.max_late_records). "
            "Their event time was behind the watermark: raise event_time.watermark_delay if the "
            "partitions are that far out of order, or set allowed_lateness"
        )
    else:
        summary = f"{total:,} records arrived late" + (f" ({by_cause})" if by_cause else "")
        summary += f", allowed {allowed:,}"
    return Outcome(
        NO_LATE_RECORDS,
        total <= allowed,
        summary,
        {"late_records": total, "by_operator": dict(late), "allowed": allowed},
    )


def _cause(where: str) -> str:
    return where if where == ROUTED_LATE else f"dropped in {where}"


def check_fix(pipeline: str, check: str) -> str:
    """What to do about one failed gate check (the CLI prints it; the UI shows it on the
    check): a structural check cannot be accepted, the others can, with a reason."""
    if check in STRUCTURAL_CHECKS:
        return f"fix the spec or the data and reprocess: {check} failing means the table itself is wrong"
    return (
        f"fix the spec and reprocess; or, if the data is right and the check is not, accept it: "
        f'kappa-orch reprocess {pipeline} --wait --accept {check} --reason "..."'
    )


def failed_candidate_fix(pipeline: str) -> str:
    """What to do about a candidate that failed its gate (also shown by status)."""
    return (
        "Fix the spec (a new fingerprint deploys a new version), or relax the gate in the spec's "
        f"`gate:` / accept the check (`kappa-orch reprocess {pipeline} --accept <check> --reason ...`) "
        f"and run `kappa-orch reprocess {pipeline}` again: it resumes the candidate from its savepoint "
        "and gates it again"
    )
