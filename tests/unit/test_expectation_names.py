"""Expectation names in specs exist in Great Expectations 1.x."""

from __future__ import annotations

from pathlib import Path

import pytest

from kappa_orch.spec.checks import check_problems, expectation_class_name, unknown_expectations
from kappa_orch.spec.load import load_pipelines
from kappa_orch.spec.model import Check

ASSETS = Path(__file__).resolve().parents[2] / "assets"


def test_class_names() -> None:
    assert expectation_class_name("expect_column_values_to_not_be_null") == "ExpectColumnValuesToNotBeNull"


def test_reference_expectations_exist_and_a_typo_is_named() -> None:
    pipelines = load_pipelines(ASSETS)
    assert unknown_expectations(pipelines) == []
    pipeline = pipelines[0]
    typo = Check(expectation="expect_column_values_to_be_nul", kwargs={"column": "auth_id"})
    broken = pipeline.model_copy(update={"spec": pipeline.spec.model_copy(update={"checks": [typo]})})
    assert [str(p) for p in unknown_expectations([broken])] == [
        f"{pipeline.path}: checks.0.expectation: Great Expectations has no expectation "
        "'expect_column_values_to_be_nul'\n  fix: use an expectation name from Great Expectations 1.x"
    ]


def _with_checks(*checks: Check) -> tuple[str, list[tuple[str, str]]]:
    pipeline = next(p for p in load_pipelines(ASSETS) if p.name == "daily_spend")
    changed = pipeline.model_copy(update={"spec": pipeline.spec.model_copy(update={"checks": list(checks)})})
    return pipeline.path, [(p.field, p.problem.split(": ", 2)[2]) for p in check_problems([changed])]


def test_check_kwargs_are_checked_against_the_expectation_and_the_target() -> None:
    # found: kwargs were never checked before the gate ran them
    path, found = _with_checks(
        Check(expectation="expect_column_values_to_not_be_null", kwargs={"column": "account", "colour": 1}),
        Check(expectation="expect_column_values_to_not_be_null", kwargs={}),
        Check(expectation="expect_column_values_to_not_be_null", kwargs={"column": "merchant"}),
        Check(expectation="expect_column_values_to_not_be_null", kwargs={"column": "x; drop table t"}),
        Check(
            expectation="expect_column_values_to_be_between", kwargs={"column": "spend_cents", "mostly": 5}
        ),
        Check(
            expectation="expect_compound_columns_to_be_unique", kwargs={"column_list": ["account", "nope"]}
        ),
    )
    columns = "['account', 'spend_day', 'authorizations', 'spend_cents']"
    assert ("checks.0.kwargs.colour", "unknown argument") in found
    assert ("checks.1.kwargs.column", "field required") in found
    assert (
        "checks.2.kwargs.column",
        f"'merchant' is not a target column (the target has {columns})",
    ) in found
    assert (
        "checks.3.kwargs.column",
        f"'x; drop table t' is not a target column (the target has {columns})",
    ) in found
    assert any(field == "checks.4.kwargs.mostly" and "less than or equal to 1" in p for field, p in found)
    assert (
        "checks.5.kwargs.column_list",
        f"['nope'] are not target columns (the target has {columns})",
    ) in found
    assert path.endswith("daily_spend.yaml")


def test_expectations_that_run_spec_sql_need_the_deployment_to_allow_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # found: expect_query_results_to_match_comparison ran pg_read_file() during the gate
    query = Check(
        expectation="expect_query_results_to_match_comparison",
        kwargs={"base_query": "SELECT pg_read_file('/etc/hostname')", "comparison_query": "SELECT 1"},
    )
    rows = Check(
        expectation="expect_column_values_to_not_be_null",
        kwargs={"column": "account", "row_condition": "pg_sleep(10) IS NULL"},
    )
    monkeypatch.delenv("KAPPA_ALLOW_SQL_EXPECTATIONS", raising=False)
    _, found = _with_checks(query, rows)
    assert [f for f, p in found if "runs SQL written in the spec" in p] == [
        "checks.0.kwargs",
        "checks.1.kwargs",
    ]
    monkeypatch.setenv("KAPPA_ALLOW_SQL_EXPECTATIONS", "1")
    _, found = _with_checks(query, rows)
    assert not [f for f, p in found if "runs SQL written in the spec" in p]
