"""Rows derived from the live table through the candidate's own expressions, by Flink
(issue 26, point 3): pure, no cluster.

A cheap change may compute a column anew from the live table's columns (an average of
two aggregates, an amount in units) or filter the rows after the operators both plans
share (a HAVING clause). Its rows are then the live rows put through those expressions.
They are evaluated by Flink, not translated into the warehouse's SQL: the expressions the
candidate's compiled plan applies (plan_diff: rebased onto the live table's columns) are
written back as Flink SQL over a JDBC scan of the live rows, that job is compiled, and its
plan must apply exactly the same expressions (the round trip: `applied_expressions` and
`same_expressions`) before it runs. A function or a literal that cannot be written back
(engine.flink.rex_sql) makes the change replay.

Filters are not pushed into the scan (the JDBC connector's `filter.handling.policy`, and
the planner's option): the connector would hand them to PostgreSQL, whose semantics are
not Flink's; a plan that does it all the same is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from kappa_orch.engine.flink.compiled import PlanError
from kappa_orch.engine.flink.plan_diff import read_plan, rewrite, table_of, through
from kappa_orch.engine.flink.rex_sql import expression_sql, name_of
from kappa_orch.engine.flink.sources import jdbc_table, options_sql
from kappa_orch.engine.flink.sql import JOB_CONFIGURATION, sink_ddl
from kappa_orch.engine.protocol import JobDefinition
from kappa_orch.spec.model import PipelineSpec

LIVE_SCAN = "kappa_live_rows"
NO_PUSHDOWN = {"table.optimizer.source.predicate-pushdown-enabled": "false"}
# the JDBC connector's own switch (FLIP-377), which the planner's option does not turn off
NO_SCAN_FILTERS = {"filter.handling.policy": "never"}


def select_sql(
    columns: Sequence[str], copies: Mapping[str, str | None], expressions: Mapping[str, Any]
) -> list[str]:
    """The derivation's select list, in the candidate's column order."""
    select = []
    for name in columns:
        source = copies.get(name)
        if source is not None:
            select.append(f"`{source}` AS `{name}`")
        else:
            select.append(f"{expression_sql(expressions[name])} AS `{name}`")
    return select


def derive_job(
    spec: PipelineSpec,
    live: tuple[str, Sequence[Sequence[str]]],
    derivation: tuple[Mapping[str, str | None], Mapping[str, Any], Sequence[Any]],
    target_table: str,
    jdbc: Mapping[str, str],
) -> JobDefinition:
    """The bounded job writing the candidate's rows (the spec's table, `target_table`)
    from the live rows in `live` (schema.table, its (name, type) columns): every column
    copied or computed (`derivation`: copies, expressions, conditions), the rows filtered."""
    source, live_columns = live
    copies, expressions, conditions = derivation
    body = ",\n  ".join(f"`{c[0]}` {c[1]}" for c in live_columns)
    options = options_sql({**jdbc_table(source, jdbc), **NO_SCAN_FILTERS})
    scan = f"CREATE TEMPORARY TABLE `{LIVE_SCAN}` (\n  {body}\n) WITH (\n  {options}\n)"
    columns = [c.name for c in spec.target.columns]
    query = f"SELECT {', '.join(select_sql(columns, copies, expressions))}\nFROM `{LIVE_SCAN}`"
    if conditions:
        query += "\nWHERE " + " AND ".join(expression_sql(c) for c in conditions)
    return JobDefinition(
        job_name=f"kappa:{spec.name}:derive:{target_table}",
        setup=[scan, sink_ddl(spec, physical_table=target_table, jdbc=jdbc)],
        inserts=[f"INSERT INTO `kappa_sink`\n{query}"],
        configuration={**JOB_CONFIGURATION, **NO_PUSHDOWN},
    )


def _normal(value: Any) -> Any:
    """An expression compared by what it computes: the live column a reference names, and
    types without their nullability (a live column is nullable where the candidate's
    input field was not; the value is the same)."""
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if not isinstance(value, dict):
        return value
    if value.get("kind") == "LIVE_COLUMN":
        return {"kind": "LIVE_COLUMN", "name": value["name"]}
    return {
        k: (v.removesuffix(" NOT NULL") if k == "type" and isinstance(v, str) else _normal(v))
        for k, v in value.items()
    }


def conjuncts(expression: Any) -> list[Any]:
    """An AND's operands, flattened (a filter compared by what it keeps)."""
    if isinstance(expression, dict) and expression.get("kind") == "CALL" and name_of(expression) == "AND":
        return [c for o in expression.get("operands") or [] for c in conjuncts(o)]
    return [expression]


def _filters(conditions: Sequence[Any]) -> list[str]:
    return sorted(json.dumps(_normal(c), sort_keys=True) for f in conditions for c in conjuncts(f))


def same_expressions(
    applied: tuple[Sequence[Any], Sequence[Any]], expected: tuple[Sequence[Any], Sequence[Any]]
) -> str | None:
    """Why the expressions a derivation's plan applies (columns, conditions) are not the
    ones the candidate applies, or None."""
    columns, conditions = applied
    want_columns, want_conditions = expected
    if len(columns) != len(want_columns):
        return f"it writes {len(columns)} columns, the candidate {len(want_columns)}"
    for index, (got, want) in enumerate(zip(columns, want_columns, strict=True)):
        if _normal(got) != _normal(want):
            return f"column {index + 1} is computed otherwise ({json.dumps(got)[:200]})"
    if _filters(conditions) != _filters(want_conditions):
        return "it filters the rows otherwise"
    return None


def applied_expressions(document: str, scan_table: str) -> tuple[list[Any], list[Any]]:
    """What a derivation's compiled plan (derive.derive_job) writes: its columns and
    filters as expressions over the scanned live columns (LIVE_COLUMN leaves)."""
    plan = read_plan(document)
    scans = [i for i, n in plan.nodes.items() if table_of(n, "scanTableSource") == scan_table]
    if len(scans) != 1:
        raise PlanError(f"the derivation's plan reads {scan_table} {len(scans)} times, not once")
    abilities = (plan.nodes[scans[0]].get("scanTableSource") or {}).get("abilities") or []
    if any(a.get("type") == "FilterPushDown" and a.get("predicates") for a in abilities):
        raise PlanError(
            "the derivation's plan hands a filter to the database, whose semantics are not Flink's"
        )
    outputs = through(plan, scans[0])
    if isinstance(outputs, str):
        raise PlanError(f"the derivation's plan is not a projection and a filter: {outputs}")
    names = re.findall(r"`([^`]+)` ", str(plan.nodes[scans[0]].get("outputType", "")))
    leaves = {j: {"kind": "LIVE_COLUMN", "name": n} for j, n in enumerate(names)}

    def rebase(value: Any) -> Any:
        return rewrite(
            value, lambda node: leaves[int(node["index"])] if node.get("kind") == "FRONTIER" else None
        )

    return rebase(outputs.columns or [{"kind": "FRONTIER", "index": j} for j in range(len(names))]), rebase(
        outputs.conditions
    )
