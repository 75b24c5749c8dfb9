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


class AwaitingApproval(OperationRefused):
    """The change waits for a person's approval of its plan id before a version starts."""


def require(module: str, extra: str, needed_for: str) -> None:
    """Refuse, with the install command, work that needs an optional dependency (an extra)
    that is not installed: the base install is what a Dagster code location needs."""
    if importlib.util.find_spec(module) is None:
        raise KappaError(
            f"{needed_for} needs the Python package {module!r}, which is not installed",
            f"pip install 'kappa-orch[{extra}]' (or 'kappa-orch[dev]' for everything)",
            blame=INFRASTRUCTURE,
        )


def known_failure(exc: BaseException) -> KappaError | None:
    """A failure of a service kappa_orch talks to, as a KappaError (None: not one)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for error in chain:
        if isinstance(error, KappaError):
            return error
    for error in chain:
        # an error from a run's event log is known by its class name only (no module)
        name = getattr(error, "cls_name", type(error).__name__)
        module = "" if hasattr(error, "cls_name") else type(error).__module__
        first = (str(error).strip().splitlines() or [name])[0]
        if name in {"OperationalError", "InterfaceError"} and module.startswith(
            ("sqlalchemy", "psycopg2", "")
        ):
            return KappaError(
                f"the warehouse (PostgreSQL) did not answer: {first}",
                "check that PostgreSQL runs (`kappa-orch stack status`) and KAPPA_WAREHOUSE_URL is right",
                blame=INFRASTRUCTURE,
            )
        if name in {"ConnectionError", "ConnectTimeout", "ReadTimeout", "MaxRetryError"} and (
            module.startswith(("requests", "urllib3")) or not module
        ):
            return KappaError(
                f"Flink did not answer: {first}",
                "check that Flink runs (`kappa-orch stack status`) and KAPPA_FLINK_REST_URL / "
                "KAPPA_SQL_GATEWAY_URL are right",
                blame=INFRASTRUCTURE,
            )
        if module.startswith("confluent_kafka") or name == "KafkaException":
            return KappaError(
                f"Kafka failed: {first}",
                "check that the broker runs (`kappa-orch stack status`) and KAPPA_KAFKA_BOOTSTRAP is right",
                blame=INFRASTRUCTURE,
            )
    return None


def innermost_failure(exc: KappaError) -> KappaError:
    """What a person is told of a KappaError raised with causes (`raise ... from`): the
    innermost error of its chain that kappa_orch knows, a KappaError or a service's own
    error (`known_failure`), as the CLI has always said it; else the error itself."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__
    for error in reversed(chain):
        known = error if isinstance(error, KappaError) else known_failure(error)
        if known is not None:
            return known
    return exc
