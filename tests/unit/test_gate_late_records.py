"""Late records, counted once: the records a job dead-lettered as late (exact, in input
records) beside anything a Flink operator dropped itself, and the no_late_records gate
check over them (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kappa_orch.lifecycle.gate import NO_LATE_RECORDS, ROUTED_LATE, late_records, late_records_outcome
from kappa_orch.spec.load import load_pipelines

ASSETS = Path(__file__).resolve().parents[2] / "assets"
SPEC = {p.name: p for p in load_pipelines(ASSETS)}["merchant_risk"].spec


def test_routed_late_records_join_only_the_operators_that_dropped_some() -> None:
    assert late_records(24, {"GroupWindowAggregate[86]": 0}) == {ROUTED_LATE: 24}
    # Flink's counter counts what the routing missed (partial aggregates under mini-batch)
    assert late_records(24, {"GroupWindowAggregate[86]": 5, "Calc[3]": 0}) == {
        ROUTED_LATE: 24,
        "GroupWindowAggregate[86]": 5,
    }
    # Flink could not be asked: a drop the routing missed could not be seen
    assert late_records(24, None) is None


def test_no_late_records_passes() -> None:
    outcome = late_records_outcome(SPEC, late_records(0, {}))
    assert (outcome.name, outcome.passed) == (NO_LATE_RECORDS, True)
    assert outcome.summary == "0 records arrived late, allowed 0"


def test_late_records_fail_naming_count_and_where_they_went() -> None:
    outcome = late_records_outcome(SPEC, late_records(24, {"GroupWindowAggregate[86]": 3}))
    assert not outcome.passed
    assert outcome.summary.startswith(
        "27 records arrived late (24 dead-lettered as late, 3 dropped in GroupWindowAggregate[86]); "
        "allowed 0 (gate.max_late_records)."
    )
    assert "raise event_time.watermark_delay" in outcome.summary
    assert outcome.metadata["late_records"] == 27


@pytest.mark.parametrize(("late", "passed"), [(10, True), (11, False)])
def test_a_tolerance_allows_some(late: int, passed: bool) -> None:
    tolerant = SPEC.model_copy(update={"gate": SPEC.gate.model_copy(update={"max_late_records": 10})})
    assert late_records_outcome(tolerant, late_records(late, {})).passed is passed


def test_counters_that_cannot_be_read_fail_the_check() -> None:
    # "no late records" is never claimed without having seen the counters
    outcome = late_records_outcome(SPEC, None)
    assert not outcome.passed
    assert "could not be read" in outcome.summary
