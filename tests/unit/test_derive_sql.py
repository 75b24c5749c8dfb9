"""A cheap change's computed columns and filters, written back as Flink SQL over the live
rows and checked against the plan Flink makes of them (engine.flink.rex_sql,
engine.flink.derive; pure: no cluster)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kappa_orch.engine.flink.compiled import PlanError, canonical_plan, table_definitions
from kappa_orch.engine.flink.derive import LIVE_SCAN, applied_expressions, derive_job, same_expressions
from kappa_orch.engine.flink.plan_diff import compare
from kappa_orch.engine.flink.rex_sql import Untranslatable, expression_sql
from kappa_orch.spec.load import load_pipeline

SINK = "`default_catalog`.`default_database`.`kappa_sink`"
ASSETS = Path(__file__).resolve().parents[2] / "assets"


def live(name: str) -> dict[str, Any]:
    return {"kind": "LIVE_COLUMN", "name": name}


def call(name: str, *operands: Any, syntax: str = "BINARY", kind: str = "BIGINT") -> dict[str, Any]:
    return {
        "kind": "CALL",
        "internalName": f"${name}$1",
        "operands": list(operands),
        "syntax": syntax,
        "type": kind,
    }


def lit(value: Any, kind: str = "INT NOT NULL") -> dict[str, Any]:
    return {"kind": "LITERAL", "value": value, "type": kind}


def ref(index: int, kind: str = "BIGINT") -> dict[str, Any]:
    return {"kind": "INPUT_REF", "inputIndex": index, "type": kind}


def test_the_expressions_of_the_suites_edits_are_written_back() -> None:
    assert expression_sql(call("/", live("spend_cents"), live("authorizations"))) == (
        "(`spend_cents` / `authorizations`)"
    )
    assert expression_sql(call("/", live("amount_cents"), lit(100))) == "(`amount_cents` / 100)"
    having = call(">=", live("spend_cents"), lit(10000), kind="BOOLEAN")
    assert expression_sql(having) == "(`spend_cents` >= 10000)"
    approved = call("=", live("status"), lit("approved", "CHAR(8) NOT NULL"), kind="BOOLEAN")
    assert expression_sql(approved) == "(`status` = 'approved')"
    case = call(
        "CASE", call("IS NULL", live("x"), syntax="POSTFIX"), lit(0, "BIGINT"), live("x"), syntax="SPECIAL"
    )
    assert expression_sql(case) == "(CASE WHEN (`x` IS NULL) THEN CAST(0 AS BIGINT) ELSE `x` END)"
    cast = call("CAST", live("day"), syntax="SPECIAL", kind="TIMESTAMP(3) NOT NULL")
    assert expression_sql(cast) == "CAST(`day` AS TIMESTAMP(3))"
    assert expression_sql(call("-", live("x"), syntax="PREFIX")) == "(-`x`)"
    assert expression_sql(call("UPPER", live("s"), syntax="FUNCTION")) == "UPPER(`s`)"
    assert expression_sql(lit(None, "BIGINT")) == "CAST(NULL AS BIGINT)"
    assert expression_sql(lit("it's", "VARCHAR(4)")) == "'it''s'"


@pytest.mark.parametrize(
    "expression",
    [
        call("REGEXP_EXTRACT", live("s"), lit("x", "CHAR(1)"), syntax="FUNCTION"),  # not on the list
        call("RAND", syntax="FUNCTION"),
        lit(1.5, "DOUBLE"),  # an approximate literal: its text may not be its value
        {"kind": "INPUT_REF", "inputIndex": 0},  # a field the live table does not keep
        call("CAST", live("x"), syntax="SPECIAL", kind="ROW<`a` INT>"),
    ],
)
def test_what_cannot_be_written_back_is_refused(expression: dict[str, Any]) -> None:
    with pytest.raises(Untranslatable):
        expression_sql(expression)


def _plan(after: list[Any], sink_columns: list[str]) -> tuple[str, list[str]]:
    """source -> aggregate -> calc (`after`) -> sink, canonical."""
    nodes = [
        {
            "id": 1,
            "type": "stream-exec-table-source-scan_1",
            "scanTableSource": {"table": {"identifier": "`default_catalog`.`default_database`.`kafka_auth`"}},
        },
        {"id": 2, "type": "stream-exec-group-window-aggregate_1", "window": {}},
        {"id": 3, "type": "stream-exec-calc_1", "projection": after},
        {
            "id": 4,
            "type": "stream-exec-sink_1",
            "dynamicTableSink": {
                "table": {"identifier": "`default_catalog`.`default_database`.`kappa_sink`"}
            },
        },
    ]
    edges = [{"source": i, "target": i + 1, "shuffle": {"type": "FORWARD"}} for i in range(1, 4)]
    sink = "CREATE TEMPORARY TABLE `kappa_sink` (" + ", ".join(f"`{c}` X" for c in sink_columns) + ") WITH ()"
    source = "CREATE TEMPORARY TABLE `kafka_auth` (`b` BYTES) WITH (\n  'topic' = 'auth'\n)"
    tables = table_definitions([source, sink], {"table.local-time-zone": "UTC"})
    return canonical_plan({"flinkVersion": "2.2", "nodes": nodes, "edges": edges}, tables).json, sink_columns


def test_a_column_that_only_makes_a_value_nullable_gives_that_value() -> None:
    # found on mr06: the planner writes CAST(COUNT(*) AS BIGINT) for the nullable BIGINT
    # column; the candidate's average reads COUNT(*) itself, which the live column holds
    counted = ref(1, "BIGINT NOT NULL")
    nullable = call("CAST", counted, syntax="SPECIAL")
    before, names = _plan([ref(0, "VARCHAR(10)"), nullable, ref(2)], ["merchant", "authorizations", "cents"])
    average = call("/", ref(2), counted)
    after, more = _plan(
        [ref(0, "VARCHAR(10)"), nullable, ref(2), average], ["merchant", "authorizations", "cents", "avg"]
    )
    diff = compare(before, after, (names, more))
    assert diff.derivable and diff.derivation == {
        "merchant": "merchant",
        "authorizations": "authorizations",
        "cents": "cents",
        "avg": None,
    }
    assert diff.expressions == {"avg": call("/", live("cents"), live("authorizations"))}
    # a cast that changes the type is not the value: the average is not derivable from it
    narrowed = call("CAST", counted, syntax="SPECIAL", kind="INT")
    before, names = _plan([ref(0, "VARCHAR(10)"), narrowed, ref(2)], ["merchant", "authorizations", "cents"])
    assert not compare(before, after, (names, more)).derivable


def test_a_function_that_cannot_be_written_back_makes_the_change_a_replay() -> None:
    before, names = _plan([ref(0, "VARCHAR(10)"), ref(1)], ["merchant", "cents"])
    masked = call("REGEXP_REPLACE", ref(0, "VARCHAR(10)"), lit("x", "CHAR(1)"), syntax="FUNCTION")
    after, more = _plan([ref(0, "VARCHAR(10)"), ref(1), masked], ["merchant", "cents", "masked"])
    diff = compare(before, after, (names, more))
    assert not diff.derivable
    assert any("REGEXP_REPLACE" in why and "does not derive" in why for why in diff.not_derivable)


def test_the_derivation_job_reads_the_live_rows_and_filters_in_flink() -> None:
    pipeline = load_pipeline(ASSETS / "daily_spend.yaml")
    columns = [[c.name, c.type] for c in pipeline.spec.target.columns]
    copies = {c[0]: c[0] for c in columns}
    having = call(">=", live("spend_cents"), lit(10000), kind="BOOLEAN")
    job = derive_job(
        pipeline.spec, ("finance.x__live_rows", columns), (copies, {}, [having]), "x_v2", {"url": "u"}
    )
    scan, sink = job.setup
    assert f"`{LIVE_SCAN}`" in scan and "'table-name' = 'finance.x__live_rows'" in scan
    # the JDBC connector would hand the filter to PostgreSQL: it may not
    assert "'filter.handling.policy' = 'never'" in scan
    assert "x_v2" in sink and job.inserts[0].endswith("WHERE (`spend_cents` >= 10000)")


def _derivation_plan(projection: list[Any], condition: Any = None, pushed: Any = None) -> str:
    scan: dict[str, Any] = {
        "id": 1,
        "type": "stream-exec-table-source-scan_1",
        "scanTableSource": {"table": {"identifier": f"`default_catalog`.`default_database`.`{LIVE_SCAN}`"}},
        "outputType": "ROW<`account` VARCHAR(2147483647), `spend_cents` BIGINT>",
    }
    if pushed is not None:
        predicates = pushed if isinstance(pushed, list) else [pushed]
        scan["scanTableSource"]["abilities"] = [{"type": "FilterPushDown", "predicates": predicates}]
    nodes = [
        scan,
        {"id": 2, "type": "stream-exec-calc_1", "projection": projection, "condition": condition},
        {
            "id": 3,
            "type": "stream-exec-sink_1",
            "dynamicTableSink": {
                "table": {"identifier": "`default_catalog`.`default_database`.`kappa_sink`"}
            },
        },
    ]
    edges = [{"source": i, "target": i + 1, "shuffle": {"type": "FORWARD"}} for i in range(1, 3)]
    return canonical_plan({"flinkVersion": "2.2", "nodes": nodes, "edges": edges}).json


def test_the_round_trip_holds_only_for_the_candidates_own_expressions() -> None:
    doubled = call("*", ref(1), lit(2))
    having = call(">=", ref(1), lit(10000), kind="BOOLEAN")
    document = _derivation_plan([ref(0, "VARCHAR(2147483647)"), doubled], having)
    applied = applied_expressions(document, LIVE_SCAN)
    want_doubled = call("*", live("spend_cents"), lit(2))
    want_having = call(">=", live("spend_cents"), lit(10000), kind="BOOLEAN")
    assert same_expressions(applied, ([live("account"), want_doubled], [want_having])) is None
    # nullability aside, anything else computed or filtered otherwise is a difference
    assert same_expressions(
        applied, ([live("account"), call("*", live("spend_cents"), lit(3))], [want_having])
    )
    assert same_expressions(applied, ([live("account"), want_doubled], []))
    assert same_expressions(applied, ([live("account")], [want_having]))
    # the JDBC connector records a push-down it took nothing from (filter.handling.policy
    # 'never'): no filter left Flink
    none_pushed = _derivation_plan([ref(0, "VARCHAR(2147483647)"), doubled], having, pushed=[])
    assert applied_expressions(none_pushed, LIVE_SCAN) == applied
    # a filter handed to the database is not evaluated by Flink: refused
    pushed = _derivation_plan([ref(0, "VARCHAR(2147483647)"), doubled], pushed=having)
    with pytest.raises(PlanError, match="database"):
        applied_expressions(pushed, LIVE_SCAN)
    assert json.dumps(applied)  # what the round trip compared is plain JSON
