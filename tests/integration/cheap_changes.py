"""Helpers of the cheap-change tests (issue 26): a realistic log produced half by half,
daily_spend's spend column renamed, and what the alias serves and each version read."""

from __future__ import annotations

import json
import time
from typing import Any

import yaml
from sqlalchemy import text

from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.spec.model import LoadedPipeline
from tests.integration import scale
from tests.integration.at_scale import produce_records
from tests.integration.platform import Platform
from tests.integration.served import serving

# 200,000 authorizations over three days in three skewed partitions, broken and
# wrong-clock events mixed in
EVENTS = 200_000


def cheap_log() -> scale.ScaleLog:
    return scale.scale_log(EVENTS, seed=26)


def produce_half(
    kafka: KafkaResource, platform: Platform, log: scale.ScaleLog, half: int
) -> list[dict[str, Any]]:
    """The first (0) or second (1) half of every partition, with its Kafka timestamps; the
    valid authorizations in it (for the oracle)."""
    topic, valid = platform.topic("payments.authorizations"), []
    for partition, records in log.auth_log.records.items():
        middle = len(records) // 2
        first, last = (0, middle) if half == 0 else (middle, len(records))
        produce_records(kafka, topic, partition, records[first:last])
        for offset in range(first, last):
            value = records[offset][1]
            if (partition, offset) not in log.auth_log.dead and value is not None:
                valid.append(json.loads(value))
    return valid


def rename_spend(platform: Platform) -> LoadedPipeline:
    """daily_spend's spend_cents is called total_cents from now on (SQL, then spec)."""
    sql_file = platform.specs / "daily_spend.sql"
    sql_file.write_text(sql_file.read_text().replace("AS spend_cents", "AS total_cents"))
    spec_file = platform.specs / "daily_spend.yaml"
    raw = yaml.safe_load(spec_file.read_text())
    for column in raw["target"]["columns"]:
        if column["name"] == "spend_cents":
            column["name"] = "total_cents"
    for check in raw.get("checks") or []:
        kwargs = check.get("kwargs") or {}
        if kwargs.get("column") == "spend_cents":
            kwargs["column"] = "total_cents"
    spec_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    return platform.pipelines()["daily_spend"]


def wait_serving(platform: Platform, rows: set[tuple[Any, ...]], timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while (got := serving(platform, "daily_spend")) != rows:
        assert time.monotonic() < deadline, f"{len(got)} rows served, {len(rows)} expected"
        time.sleep(2)


def own_counts(platform: Platform, version: int) -> int:
    """The records the version's own job read (its counters, without what it carried)."""
    with platform.warehouse.connect() as conn:
        counted = conn.execute(
            text(
                "SELECT coalesce(sum(records), 0) FROM kappa_counts.input_counts "
                "WHERE pipeline = :p AND version = :v"
            ),
            {"p": "daily_spend", "v": version},
        ).scalar()
    return int(counted or 0)
