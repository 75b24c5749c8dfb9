"""What every kappa_orch step does around its work inside a Dagster run: its OpenLineage
events name the run as their parent, and an expected failure (a `KappaError`: a spec
problem, a service down, a claim held, a refused operation) fails the step as a
`dagster.Failure`: its description is the problem and its fix, as the CLI prints them
(for an error with causes, the innermost one kappa_orch knows); its metadata holds the
fix, where the fault lies and the error's class. The CLI reads it back (`error_of`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster import Failure

from kappa_orch.errors import INFRASTRUCTURE, KappaError, innermost_failure
from kappa_orch.lineage import emit as lineage_emit

FIX = "fix"
FAULT = "fault"
ERROR = "kappa_error"  # the KappaError's class, e.g. ClaimHeld


def as_failure(exc: KappaError) -> Failure:
    """The step failure a person reads in the UI: what went wrong, the fix, whose fault.
    Only an infrastructure fault may be retried by a retry policy."""
    metadata: dict[str, Any] = {FAULT: exc.blame, ERROR: type(exc).__name__}
    if exc.fix:
        metadata[FIX] = exc.fix
    # the description reads as the CLI prints it: the problem, then "  fix: ..." on its own line
    return Failure(description=str(exc), metadata=metadata, allow_retries=exc.blame == INFRASTRUCTURE)


@contextmanager
def kappa_step(context: Any) -> Iterator[None]:
    """The body of an op or asset: lineage parented to this run; KappaError -> Failure."""
    with lineage_emit.within(context.run.run_id, context.run.job_name):
        try:
            yield
        except KappaError as exc:
            raise as_failure(innermost_failure(exc)) from None


def error_of(failure_data: Any) -> KappaError | None:
    """The KappaError a step failed with, from its event's `user_failure_data` (None when
    the step failed some other way)."""
    if failure_data is None or ERROR not in (failure_data.metadata or {}):
        return None
    metadata = {key: getattr(value, "value", value) for key, value in failure_data.metadata.items()}
    problem = (failure_data.description or "").partition("\n  fix: ")[0]
    return KappaError(problem, metadata.get(FIX), blame=metadata[FAULT])
