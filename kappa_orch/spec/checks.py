"""Checks of a spec that need Great Expectations (slow to import: only on request).

Every check's kwargs are checked before any gate runs: against the expectation's own
model (GX 1.x expectations are pydantic models: unknown or missing arguments, wrong
types) and against the target's columns. Expectations that execute SQL written in the
spec (`unexpected_rows_query`, `base_query`, a `row_condition`) are refused unless the
deployment allows them (KAPPA_ALLOW_SQL_EXPECTATIONS=1); the gate and the scheduled
checks then run them on a read-only connection."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from kappa_orch.spec.load import SpecProblem
from kappa_orch.spec.model import LoadedPipeline

# kwargs that name one target column, and those that name several
COLUMN_KWARGS = ("column", "column_A", "column_B")
COLUMN_LIST_KWARGS = ("column_list", "column_set", "matching_columns")
# kwargs whose value is SQL (or a condition GX turns into SQL) run against the warehouse
SQL_KWARGS = ("unexpected_rows_query", "base_query", "comparison_query", "row_condition")
ALLOW_SQL_ENV = "KAPPA_ALLOW_SQL_EXPECTATIONS"


def expectation_class_name(expectation: str) -> str:
    """expect_column_values_to_not_be_null -> ExpectColumnValuesToNotBeNull"""
    return "".join(part.capitalize() for part in expectation.split("_"))


def sql_expectations_allowed() -> bool:
    return os.environ.get(ALLOW_SQL_ENV, "").strip().lower() in {"1", "true", "yes"}


def unknown_expectations(pipelines: Sequence[LoadedPipeline]) -> list[SpecProblem]:
    """A problem per check whose expectation Great Expectations does not have."""
    return [p for p in check_problems(pipelines, allow_sql=True) if p.field.endswith(".expectation")]


def check_problems(
    pipelines: Sequence[LoadedPipeline], *, allow_sql: bool | None = None
) -> list[SpecProblem]:
    """A problem per check (file, field, problem, fix) the gate could not run as written."""
    import great_expectations.expectations as gxe

    allow = sql_expectations_allowed() if allow_sql is None else allow_sql
    problems = []
    for pipeline in pipelines:
        columns = [c.name for c in pipeline.spec.target.columns]
        for index, check in enumerate(pipeline.spec.checks):
            cls = getattr(gxe, expectation_class_name(check.expectation), None)
            if cls is None:
                problems.append(
                    SpecProblem(
                        pipeline.path,
                        f"checks.{index}.expectation",
                        f"Great Expectations has no expectation {check.expectation!r}",
                        "use an expectation name from Great Expectations 1.x",
                    )
                )
                continue
            found = _kwargs_problems(check.expectation, cls, check.kwargs, columns, allow)
            problems += [
                SpecProblem(pipeline.path, f"checks.{index}.kwargs{f}", m, fix) for f, m, fix in found
            ]
    return problems


def _kwargs_problems(
    name: str, cls: Any, kwargs: dict[str, Any], columns: list[str], allow_sql: bool
) -> list[tuple[str, str, str]]:
    """(field suffix, problem, fix) per problem of one check's kwargs."""
    problems = []
    # an expectation with a query field always runs SQL; any with a row_condition may
    sql = [k for k in SQL_KWARGS if k in kwargs or (k != "row_condition" and k in cls.__fields__)]
    if sql and not allow_sql:
        problems.append(
            (
                "",
                f"{name} runs SQL written in the spec ({', '.join(sql)}) against the warehouse",
                "express the check with column expectations, or allow SQL expectations for this "
                f"deployment ({ALLOW_SQL_ENV}=1; they then run read-only)",
            )
        )
    for key in COLUMN_KWARGS:
        value = kwargs.get(key)
        if value is not None and value not in columns:
            problems.append(
                (
                    f".{key}",
                    f"{value!r} is not a target column (the target has {columns})",
                    "name a target column",
                )
            )
    for key in COLUMN_LIST_KWARGS:
        value = kwargs.get(key)
        if isinstance(value, list) and (unknown := [v for v in value if v not in columns]):
            problems.append(
                (
                    f".{key}",
                    f"{unknown} are not target columns (the target has {columns})",
                    "name target columns",
                )
            )
    try:
        cls(**kwargs)
    except Exception as exc:  # GX raises pydantic (v1) ValidationError and its own errors
        fix = f"give {name} the arguments Great Expectations documents for it"
        problems += [(f".{loc}" if loc else "", message, fix) for loc, message in _validation_errors(exc)]
    return problems


def _validation_errors(exc: Exception) -> list[tuple[str, str]]:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return [("", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)]
    found = []
    for error in errors():
        loc = ".".join(str(part) for part in error.get("loc", ()))
        message = str(error.get("msg", "invalid"))
        found.append((loc, "unknown argument" if message == "extra fields not permitted" else message))
    return found
