"""Errors a user can act on: each says what went wrong, how to fix it, and where the
fault lies: in the spec, in the infrastructure (a service down, a cluster out of
slots), or in the operation asked for (a claim held, a gate failed, a refused rollback)."""

from __future__ import annotations

import importlib.util

SPEC = "spec"
INFRASTRUCTURE = "infrastructure"
OPERATION = "operation"


class KappaError(Exception):
    """Base error of kappa_orch: a problem statement plus the fix to try."""

    blame = OPERATION

    def __init__(self, problem: str, fix: str | None = None, *, blame: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        if blame is not None:
            self.blame = blame
        super().__init__(problem if fix is None else f"{problem}\n  fix: {fix}")


class SpecError(KappaError):
    """The pipeline spec (or its SQL) is wrong: fix the spec."""

    blame = SPEC


class StackError(KappaError):
    """A local service (Kafka, Flink, PostgreSQL) could not be set up or started."""

    blame = INFRASTRUCTURE


class ServiceError(KappaError):
    """A service answered, with an error (a topic missing, a write refused, a grant lacking)."""

    blame = INFRASTRUCTURE


class ServiceUnavailable(ServiceError):
    """A service the caller needs does not answer (sensors skip their tick on this one)."""


class FlinkJobError(KappaError):
    """Flink rejected a statement, or a job failed, stalled or did not finish in time."""

    blame = INFRASTRUCTURE


class ClaimHeld(KappaError):
    """Another run holds the pipeline (a reprocess or deploy in progress): wait or take over."""


class GateFailed(KappaError):
    """A version did not pass its checks, so the alias does not move to it."""


class OperationRefused(KappaError):
    """The operation asked for is not possible as things are (a wrong name, a live version
    to retire, a rollback with nothing to roll back to)."""


def require(module: str, extra: str, needed_for: str) -> None:
    """Refuse, with the install command, work that needs an optional dependency (an extra)
    that is not installed: the base install is what a Dagster code location needs."""
    if importlib.util.find_spec(module) is None:
        raise KappaError(
            f"{needed_for} needs the Python package {module!r}, which is not installed",
            f"pip install 'kappa-orch[{extra}]' (or 'kappa-orch[dev]' for everything)",
            blame=INFRASTRUCTURE,
        )
