"""Helpers of the tests that run the reference pipelines at scale: producing a partitioned
log with its timestamps, the oracle's rows of every pipeline, and waiting until every
alias serves them."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import text

from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.model import LoadedPipeline
from tests.integration import scale


def produce(kafka: KafkaResource, topic: str, log: scale.Partitioned, partitions: list[int]) -> None:
    """Each partition's records in offset order, with their Kafka timestamps."""
    for partition in partitions:
        produce_records(kafka, topic, partition, log.records[partition])


def produce_records(
    kafka: KafkaResource, topic: str, partition: int, records: list[tuple[int, bytes | None]]
) -> None:
    """(Kafka timestamp, value) records into one partition, in order."""
    stamps = iter([ts for ts, _ in records])
    kafka.produce(
        topic,
        [value for _, value in records],
        partition=partition,
        timestamp_ms=lambda _v: next(stamps),
    )


def serving_rows(
    warehouse: WarehouseResource, pipeline: LoadedPipeline, table: str | None = None
) -> set[Any]:
    columns = ", ".join(c.name for c in pipeline.spec.target.columns)
    relation = table or pipeline.spec.target.alias
    with warehouse.connect() as conn:
        return {tuple(r) for r in conn.execute(text(f"SELECT {columns} FROM {relation}"))}


def expected(log: scale.ScaleLog, auths: list[dict[str, Any]], delay_ms: int = 5_000) -> dict[str, set[Any]]:
    valid = {key: ts for key, ts in scale.valid_times(log.auth_log).items()}
    return {
        "daily_spend": scale.daily_spend(auths),
        "merchant_risk": scale.merchant_risk(auths, scale.watermark(log.auth_log, valid, delay_ms)),
        "account_latest": scale.account_latest(auths),
        "auth_settlement": scale.auth_settlement(auths, log.settlements),
    }


def await_rows(
    warehouse: WarehouseResource, pipelines: dict[str, LoadedPipeline], want: dict[str, set[Any]]
) -> None:
    deadline = time.monotonic() + 300
    pending = dict(pipelines)
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            if serving_rows(warehouse, pending[name]) == want[name]:
                del pending[name]
        time.sleep(2)
    differences = {
        name: (
            len(serving_rows(warehouse, p)),
            len(want[name]),
            sorted(want[name] - serving_rows(warehouse, p))[:3],
        )
        for name, p in pending.items()
    }
    assert not pending, differences
