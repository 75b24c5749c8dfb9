"""The services every lifecycle step works with, as one frozen value.

A step reads the log (Kafka), runs jobs on the stream engine, keeps tables and the
registry in the warehouse, and tells what it does to `log`. They travel together through
deploy, catch-up, gate, swap, repair and batch instead of as four parameters of every
function; a step that tells its progress elsewhere makes a copy (`telling`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from kappa_orch.engine.protocol import StreamEngine
from kappa_orch.lineage.ops import Lineage
from kappa_orch.progress import Log
from kappa_orch.resources.alerts import AlertResource
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.resources.warehouse import WarehouseResource


def _quiet(_: str) -> None:
    """Tells nothing (the default log)."""


@dataclass(frozen=True)
class Services:
    """Kafka, the stream engine and the warehouse, with the log a step tells its progress
    to (default: silent), what it tells OpenLineage and where its alerts go. Frozen: a step
    never swaps one out."""

    kafka: KafkaResource
    engine: StreamEngine
    warehouse: WarehouseResource
    log: Log = _quiet
    lineage: Lineage = field(default_factory=Lineage)  # default: nothing told to OpenLineage
    alerts: AlertResource | None = None  # where failed gates are sent (default: nowhere)

    def telling(self, log: Log) -> Services:
        """The same services, telling progress to `log`."""
        return replace(self, log=log)
