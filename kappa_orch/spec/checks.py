"""Checks of a spec that need Great Expectations (slow to import: only on request)."""

from __future__ import annotations

from collections.abc import Sequence

from kappa_orch.spec.model import LoadedPipeline


def expectation_class_name(expectation: str) -> str:
    """expect_column_values_to_not_be_null -> ExpectColumnValuesToNotBeNull"""
    return "".join(part.capitalize() for part in expectation.split("_"))


def unknown_expectations(pipelines: Sequence[LoadedPipeline]) -> list[str]:
    """A message per check whose expectation Great Expectations does not have."""
    import great_expectations.expectations as gxe

    problems = []
    for pipeline in pipelines:
        for index, check in enumerate(pipeline.spec.checks):
            if not hasattr(gxe, expectation_class_name(check.expectation)):
                problems.append(
                    f"{pipeline.path}: checks.{index}.expectation: Great Expectations has no "
                    f"expectation {check.expectation!r}"
                )
    return problems
