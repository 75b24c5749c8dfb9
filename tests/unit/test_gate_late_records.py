"""The no_late_records gate check, from a job's late-record counters (pure)."""

from __future__ import annotations

from pathlib import Path

from kappa_orch.gate import NO_LATE_RECORDS, late_records_outcome
from kappa_orch.spec.load import load_pipelines

ASSETS = Path(__file__).resolve().parents[2] / "assets"
SPEC = {p.name: p for p in load_pipelines(ASSETS)}["merchant_risk"].spec


def test_no_late_records_passes() -> None:
    outcome = late_records_outcome(SPEC, {"GroupWindowAggregate[86]": 0})
    assert (outcome.name, outcome.passed) == (NO_LATE_RECORDS, True)
    assert outcome.summary == "0 records dropped as late, allowed 0"


def test_late_records_fail_naming_count_and_operator() -> None:
    outcome = late_records_outcome(SPEC, {"GroupWindowAggregate[86]": 163_332})
    assert not outcome.passed
    assert outcome.summary.startswith(
        "163,332 records dropped as late (163,332 in GroupWindowAggregate[86]); "
        "allowed 0 (gate.max_late_records)."
    )
    assert "raise event_time.watermark_delay" in outcome.summary
    assert outcome.metadata["late_records"] == 163_332


def test_a_tolerance_allows_some() -> None:
    tolerant = SPEC.model_copy(update={"gate": SPEC.gate.model_copy(update={"max_late_records": 10})})
    assert late_records_outcome(tolerant, {"GroupWindowAggregate[86]": 10}).passed
    assert not late_records_outcome(tolerant, {"GroupWindowAggregate[86]": 11}).passed


def test_counters_that_cannot_be_read_fail_the_check() -> None:
    # "no late records" is never claimed without having seen the counters
    outcome = late_records_outcome(SPEC, None)
    assert not outcome.passed
    assert "could not be read" in outcome.summary
