"""Expectation names in specs exist in Great Expectations 1.x."""

from __future__ import annotations

from pathlib import Path

from kappa_orch.spec.checks import expectation_class_name, unknown_expectations
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
    assert unknown_expectations([broken]) == [
        f"{pipeline.path}: checks.0.expectation: Great Expectations has no expectation "
        "'expect_column_values_to_be_nul'"
    ]
