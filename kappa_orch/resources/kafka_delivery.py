"""What a producer learns about its records. A record the brokers did not acknowledge is
not necessarily absent: one whose request timed out while the replicas were away may
still be written once they return, as CI found with two of three brokers killed. Even a
record purged from the local queue may be waiting for a retry of a write that reached
the leader. So the error never calls the records lost: it says they are unconfirmed."""

from __future__ import annotations

from typing import Any

from kappa_orch.errors import ServiceError


class Deliveries:
    """Collects a producer's delivery reports (pass `on_delivery` to each produce)."""

    def __init__(self) -> None:
        self.failures: list[Any] = []

    def on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.failures.append(err)

    def error(self, topic: str, count: int, pending: int) -> ServiceError:
        """`pending`: records still unacknowledged when the wait ended (then purged)."""
        missing = max(len(self.failures), pending)
        cause = f": {self.failures[0].str()}" if self.failures else ""
        return ServiceError(
            f"{missing} of {count} records to {topic!r} were not acknowledged by the brokers; "
            f"Kafka may still write some of them (a write that timed out can have reached the "
            f"partition's leader){cause}",
            "check the brokers (`kappa-orch stack status`), then produce again; a consumer "
            "of the topic must tolerate an unconfirmed record appearing once",
        )
