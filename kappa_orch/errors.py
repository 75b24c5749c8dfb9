"""Errors a user can act on: each says what went wrong and how to fix it."""

from __future__ import annotations


class KappaError(Exception):
    """Base error of kappa_orch: a problem statement plus the fix to try."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem if fix is None else f"{problem}\n  fix: {fix}")


class StackError(KappaError):
    """A local service (Kafka, Flink, PostgreSQL) could not be set up or started."""


class ServiceUnavailable(KappaError):
    """A service the caller needs does not answer."""


class FlinkJobError(KappaError):
    """Flink rejected a statement or a job failed."""
