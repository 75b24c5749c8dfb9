"""A throw-away corner of the local stack for one benchmark run: its own topic and
database and a folder for specs, all removed afterwards."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.stack.config import StackConfig
from kappa_orch.stack.postgres import PostgresService

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Sandbox:
    kafka: KafkaResource
    flink: FlinkResource
    warehouse: WarehouseResource
    topic: str
    folder: Path


@contextmanager
def sandbox(*, partitions: int = 3) -> Iterator[Sandbox]:
    # the stack the environment names (KAPPA_HOME, the KAPPA_*_PORT variables), as the CLI's
    stack = StackConfig.from_environment(os.environ, ROOT / ".kappa")
    suffix = uuid.uuid4().hex[:8]
    database = f"bench_{suffix}"
    postgres = PostgresService(stack)
    postgres.provision_database(database)
    admin = create_engine(postgres.admin_url(), isolation_level="AUTOCOMMIT")
    resources = stack.platform(database).resources()
    kafka, flink, warehouse = resources["kafka"], resources["flink"], resources["warehouse"]
    topic = f"bench.{suffix}.payments.authorizations"
    # unlimited retention: benchmark events may carry old timestamps
    kafka.create_topic(topic, partitions=partitions, config={"retention.ms": "-1"})
    box = Sandbox(kafka, flink, warehouse, topic, Path(tempfile.mkdtemp(prefix="kappa-bench-")))
    try:
        yield box
    finally:
        warehouse.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()
        kafka.delete_topic(topic)
        shutil.rmtree(box.folder, ignore_errors=True)


def run_on_events(doc: str | None, run: Callable[[Sandbox, int], None]) -> None:
    """A benchmark's command line (`--events N`, default a million, `doc` its help) and
    its run in a sandbox."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    with sandbox() as box:
        run(box, args.events)
