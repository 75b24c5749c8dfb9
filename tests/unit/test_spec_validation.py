"""Malformed specs and the exact message each gets (file, field, problem, fix)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kappa_orch.spec.load import SpecErrors, load_pipeline, load_pipelines
from tests.unit.specs import ASSETS, BASE, SQL, mutated, problems, write


def test_the_reference_specs_are_valid() -> None:
    assert [p.name for p in load_pipelines(ASSETS)] == [
        "account_latest",
        "auth_settlement",
        "daily_spend",
        "merchant_risk",
    ]


def test_unknown_column_in_the_key(tmp_path: Path) -> None:
    spec = mutated(lambda s: s["target"].update(primary_key=["account", "day"]))
    assert problems(write(tmp_path, spec)) == [
        (
            "target",
            "primary_key column(s) ['day'] are not target columns; the target has "
            "['account', 'spend_day', 'authorizations', 'spend_cents']",
            None,
        )
    ]


def test_bad_identifier(tmp_path: Path) -> None:
    spec = mutated(lambda s: s.update(name="Daily-Spend"))
    assert problems(write(tmp_path, spec)) == [
        (
            "name",
            "'Daily-Spend' is not a valid identifier: use lower-case letters, digits and _ "
            "(starting with a letter or _), at most 63 characters",
            None,
        )
    ]


def test_reserved_word_as_column(tmp_path: Path) -> None:
    spec = mutated(lambda s: s["sources"][0]["columns"].append({"name": "offset", "type": "BIGINT"}))
    assert problems(write(tmp_path, spec)) == [
        (
            "sources.0.columns.6.name",
            "'offset' is an SQL reserved word (PostgreSQL); choose another name (e.g. offset_value)",
            None,
        )
    ]


def test_missing_sql_file(tmp_path: Path) -> None:
    spec = mutated(lambda s: s.update(sql="missing.sql"))
    path = write(tmp_path, spec, sql=None)
    assert problems(path) == [
        (
            "sql",
            f"SQL file 'missing.sql' not found (looked for {tmp_path / 'missing.sql'})",
            "put the SELECT in that file next to the spec, or fix the name",
        )
    ]


def test_sql_that_does_not_parse(tmp_path: Path) -> None:
    path = write(tmp_path, BASE, sql="SELECT account, FROM WHERE GROUP")
    [(field, problem, fix)] = problems(path)
    assert field == "sql"
    assert problem.startswith("daily_spend.sql: the SQL does not parse at line 1, column")
    assert fix == "fix the SELECT"


def test_sql_must_be_a_select(tmp_path: Path) -> None:
    path = write(tmp_path, BASE, sql="INSERT INTO t SELECT 1 AS a")
    assert problems(path) == [
        (
            "sql",
            "daily_spend.sql: the SQL must be a single SELECT (kappa_orch writes the DDL and the "
            "INSERT); it starts with 'INSERT'",
            "fix the SELECT",
        )
    ]


def test_select_star(tmp_path: Path) -> None:
    path = write(tmp_path, BASE, sql="SELECT * FROM authorizations")
    assert problems(path) == [
        (
            "sql",
            "daily_spend.sql: SELECT * is not allowed: select the target columns by name",
            "fix the SELECT",
        )
    ]


def test_sql_reads_an_undeclared_source(tmp_path: Path) -> None:
    sql = SQL.replace("FROM authorizations", "FROM authorizations JOIN settlements USING (auth_id)")
    assert problems(write(tmp_path, BASE, sql=sql)) == [
        (
            "sources",
            "the SQL reads 'settlements', which is not a declared source (sources: ['authorizations'])",
            "declare it under sources, or fix the table name in the SQL",
        )
    ]


def test_selected_columns_differ_from_the_target(tmp_path: Path) -> None:
    sql = SQL.replace("SUM(amount_cents) AS spend_cents", "SUM(amount_cents) AS spend")
    assert problems(write(tmp_path, BASE, sql=sql)) == [
        (
            "target.columns",
            "the SQL selects ['account', 'spend_day', 'authorizations', 'spend'] but target.columns "
            "declares ['account', 'spend_day', 'authorizations', 'spend_cents']",
            "declare the target columns in the order the SELECT returns them",
        )
    ]


def test_unsupported_type(tmp_path: Path) -> None:
    spec = mutated(lambda s: s["target"]["columns"][0].update(type="VARCHAR(10)"))
    assert problems(write(tmp_path, spec)) == [
        (
            "target.columns.0.type",
            "unsupported column type 'VARCHAR(10)'; use one of STRING, BOOLEAN, INT, BIGINT, DOUBLE, "
            "DATE, TIMESTAMP(3) or DECIMAL(p, s)",
            None,
        )
    ]


def test_bad_duration(tmp_path: Path) -> None:
    spec = mutated(lambda s: s["catch_up"].update(stable_for="10 seconds"))
    assert problems(write(tmp_path, spec)) == [
        (
            "catch_up.stable_for",
            "'10 seconds' is not a duration; write it like 500ms, 10s, 5m, 2h or 7d",
            None,
        )
    ]


def test_missing_and_misspelt_fields(tmp_path: Path) -> None:
    spec = mutated(lambda s: s.update(onwer=s.pop("owner")))
    assert problems(write(tmp_path, spec)) == [
        ("owner", "Field required", "add the field owner"),
        ("onwer", "unknown field", "remove it or fix its spelling; the README lists the spec's fields"),
    ]


def test_alias_without_schema(tmp_path: Path) -> None:
    spec = mutated(lambda s: s["target"].update(alias="daily_spend"))
    assert problems(write(tmp_path, spec)) == [
        ("target.alias", "alias 'daily_spend' must be schema.table, e.g. analytics.daily_spend", None)
    ]


def test_event_time_from_an_undeclared_column(tmp_path: Path) -> None:
    spec = mutated(lambda s: s["sources"][0]["event_time"].update({"from": "event_ts"}))
    assert problems(write(tmp_path, spec)) == [
        (
            "sources.0",
            "event_time.from 'event_ts' is not a column of source 'authorizations'; declare it under "
            "columns (epoch milliseconds, BIGINT)",
            None,
        )
    ]


def test_event_time_from_a_column_that_is_not_epoch_millis(tmp_path: Path) -> None:
    def change(spec: dict[str, Any]) -> None:
        spec["sources"][0]["columns"][-1]["type"] = "STRING"

    assert problems(write(tmp_path, mutated(change))) == [
        (
            "sources.0",
            "event_time.from 'ts' of source 'authorizations' is declared STRING; it holds epoch "
            "milliseconds: declare it BIGINT",
            None,
        )
    ]


def test_coerce_is_refused_where_there_is_nothing_to_coerce(tmp_path: Path) -> None:
    def change(spec: dict[str, Any]) -> None:
        spec["sources"][0]["columns"].append({"name": "sold_on", "type": "DATE", "coerce": True})

    [(field, problem, _)] = problems(write(tmp_path, mutated(change)))
    assert field.startswith("sources.0.columns.")
    assert "coerce is not available for DATE" in problem and "remove `coerce`" in problem


def test_coerce_changes_the_fingerprint(tmp_path: Path) -> None:
    from kappa_orch.spec.fingerprint import fingerprint

    strict = load_pipeline(write(tmp_path, BASE))
    spec = mutated(lambda s: s["sources"][0]["columns"][3].update(coerce=True))
    coerced = load_pipeline(write(tmp_path, spec))
    assert coerced.spec.sources[0].columns[3].coerce
    assert fingerprint(strict) != fingerprint(coerced)


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    [(field, problem, fix)] = problems(path)
    assert field == "(yaml)"
    assert problem.startswith("not valid YAML")
    assert fix == "fix the YAML syntax"


def test_duplicate_pipeline_name_and_alias_across_files(tmp_path: Path) -> None:
    first = write(tmp_path, BASE, name="a")
    second = write(tmp_path, BASE, name="b")
    with pytest.raises(SpecErrors) as error:
        load_pipelines(tmp_path)
    assert [str(p) for p in error.value.problems] == [
        f"{second}: name: pipeline name 'daily_spend' is already used by {first}\n"
        "  fix: give each pipeline its own pipeline name",
        f"{second}: target.alias: 'analytics.daily_spend' is already used by {first} (its target.alias)\n"
        "  fix: give each pipeline its own target alias and batch table",
        f"{second}: batch.table: 'analytics.daily_spend_daily' is already used by {first} (its batch.table)\n"
        "  fix: give each pipeline its own target alias and batch table",
    ]


def test_all_problems_of_a_folder_are_reported_at_once(tmp_path: Path) -> None:
    write(tmp_path, mutated(lambda s: s.update(name="Bad-Name")), name="one")
    write(tmp_path, mutated(lambda s: s["target"].update(primary_key=["nope"])), name="two")
    with pytest.raises(SpecErrors) as error:
        load_pipelines(tmp_path)
    assert [(Path(p.path).name, p.field) for p in error.value.problems] == [
        ("one.yaml", "name"),
        ("two.yaml", "target"),
    ]


def test_a_windowed_pipeline_cannot_have_a_batch_table(tmp_path: Path) -> None:
    # found by a new user: `backfill` failed in Flink batch mode ("Unknown window type
    # encountered") on a spec that validate had accepted
    windowed = (ASSETS / "merchant_risk.sql").read_text()
    spec = yaml.safe_load((ASSETS / "merchant_risk.yaml").read_text())
    spec["batch"] = {"start_date": "2026-01-01", "day_column": "window_day"}
    spec["target"]["columns"].append({"name": "window_day", "type": "DATE"})
    sql = windowed.replace(
        "SUM(amount_cents) AS amount_cents",
        "SUM(amount_cents) AS amount_cents,\n"
        "  CAST(TUMBLE_START(event_time, INTERVAL '1' HOUR) AS DATE) AS window_day",
    )
    [(field, problem, fix)] = problems(write(tmp_path, spec, name="merchant_risk", sql=sql))
    assert field == "batch"
    assert "group window function(s) ['TUMBLE']" in problem
    assert "cannot have a batch table" in problem
    assert fix is not None and "FLOOR(event_time TO HOUR)" in fix


def test_event_time_settings_are_bounded(tmp_path: Path) -> None:
    spec = mutated(lambda s: s["sources"][0]["event_time"].update(max_ahead="1000d"))
    [(field, problem, _)] = problems(write(tmp_path, spec))
    assert field == "sources.0.event_time.max_ahead"
    assert "at most 999d" in problem


def test_late_dropping_operators_are_found_by_kind() -> None:
    from kappa_orch.spec.sql import late_dropping, parse_select

    times = {"event_time"}

    def kinds(sql: str) -> list[str]:
        return late_dropping(parse_select(sql), times)

    assert kinds("SELECT a, COUNT(*) AS n FROM t GROUP BY a, TUMBLE(event_time, INTERVAL '1' HOUR)") == [
        "group window"
    ]
    tvf = (
        "SELECT window_start, COUNT(*) AS n "
        "FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(event_time), INTERVAL '1' HOUR))"
    )
    assert kinds(tvf + " GROUP BY window_start, window_end") == ["window table function"]
    over = "SELECT a, SUM(x) OVER (PARTITION BY a ORDER BY event_time ROWS 5 PRECEDING) AS s FROM t"
    assert kinds(over) == ["OVER aggregate"]
    bounded = (
        "SELECT t.a FROM t JOIN u ON t.id = u.id "
        "AND t.event_time BETWEEN u.event_time - INTERVAL '1' HOUR AND u.event_time"
    )
    assert kinds(bounded) == ["interval join"]
    # a deduplication over event time, a regular join and a plain aggregate drop nothing as late
    dedup = (
        "SELECT * FROM (SELECT a, ROW_NUMBER() OVER (PARTITION BY a ORDER BY event_time DESC) AS rn "
        "FROM t) WHERE rn = 1"
    )
    assert kinds(dedup) == []
    assert kinds("SELECT t.a FROM t JOIN u ON t.id = u.id") == []
    assert kinds("SELECT a, COUNT(*) AS n FROM t GROUP BY a") == []


def test_allowed_lateness_is_refused_where_flink_would_not_honour_it(tmp_path: Path) -> None:
    spec = mutated(lambda s: s.update(allowed_lateness="1h", batch=None))
    spec.pop("batch")
    over = (
        "SELECT auth_id, account, merchant, amount_cents AS spend_cents, "
        "SUM(amount_cents) OVER (PARTITION BY account ORDER BY event_time ROWS 5 PRECEDING) AS recent_cents "
        "FROM authorizations"
    )
    spec["target"]["columns"] = [
        {"name": "auth_id", "type": "STRING"},
        {"name": "account", "type": "STRING"},
        {"name": "merchant", "type": "STRING"},
        {"name": "spend_cents", "type": "BIGINT"},
        {"name": "recent_cents", "type": "BIGINT"},
    ]
    spec["target"]["primary_key"] = ["auth_id"]
    [(field, problem, fix)] = problems(write(tmp_path, spec, sql=over))
    assert field == "allowed_lateness"
    assert "applies to group windows only, and the SQL has OVER aggregate" in problem
    assert fix is not None and "raise the sources' event_time.watermark_delay" in fix


def test_a_dead_letter_topic_is_one_pipelines_own(tmp_path: Path) -> None:
    first = write(tmp_path, BASE, name="a")
    other = mutated(
        lambda s: s.update(name="daily_spend_eu", dead_letters={"topic": "kappa.dead-letters.daily_spend"})
    )
    other["target"]["alias"] = "analytics.daily_spend_eu"
    other["batch"]["table"] = "daily_spend_eu_daily"
    second = write(tmp_path, other, name="b")
    with pytest.raises(SpecErrors) as error:
        load_pipelines(tmp_path)
    assert [str(p) for p in error.value.problems] == [
        f"{second}: dead_letters.topic: 'kappa.dead-letters.daily_spend' is the dead-letter topic of "
        f"{first}: its letters would be mixed with another pipeline's\n"
        "  fix: give each pipeline its own dead-letter topic (default kappa.dead-letters.<pipeline>)"
    ]


def test_every_column_type_a_spec_may_declare_has_one_warehouse_type() -> None:
    from kappa_orch.registry.serving import sql_type
    from kappa_orch.spec.rules import COLUMN_TYPES

    assert {t: type(sql_type(t)).__name__ for t in COLUMN_TYPES} == {
        "STRING": "Text",
        "BOOLEAN": "Boolean",
        "INT": "Integer",
        "BIGINT": "BigInteger",
        "DOUBLE": "DOUBLE_PRECISION",
        "DATE": "Date",
        "TIMESTAMP(3)": "TIMESTAMP",
    }
    assert str(sql_type("DECIMAL(12, 2)")) == "NUMERIC(12, 2)"
