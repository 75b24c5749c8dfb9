# no `from __future__ import annotations`: Dagster reads the parameter types
"""Sensors that request backfills of batch days: late records for a computed day, and
days a scheduled check failed on."""

import json
from collections.abc import Sequence
from typing import Any

from dagster import (
    AssetSelection,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from kappa_orch import registry
from kappa_orch.batch import late_days
from kappa_orch.dagster.translator import DEFAULT_TRANSLATOR, KappaTranslator
from kappa_orch.errors import ServiceUnavailable
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.model import LoadedPipeline

Read = dict[str, dict[str, int]]  # topic -> partition -> the offset a computed day read up to
Record = tuple[str, int, int, int]  # topic, partition, offset, timestamp


def _records_since(
    topics: Sequence[str],
    reads: dict[str, dict[Any, Read]],
    cursor: dict[str, int],
    kafka: KafkaResource,
    max_records: int,
) -> list[Record]:
    """The records appended since the computed days read each partition (or since the
    cursor, which this advances)."""
    records: list[Record] = []
    for topic in topics:
        for partition, (low, high) in kafka.watermarks(topic).items():
            floors = [
                int(read[topic][str(partition)])
                for days in reads.values()
                for read in days.values()
                if str(partition) in read.get(topic, {})
            ]
            if not floors:
                continue  # no computed day read this partition yet
            key = f"{topic}/{partition}"
            start = max(cursor.get(key, 0), min(floors), low)
            found = kafka.read_timestamps(topic, partition, start, high, max_records=max_records)
            records += [(topic, partition, offset, ts) for offset, ts in found]
            cursor[key] = found[-1][0] + 1 if found else max(start, cursor.get(key, 0))
    return records


def _late_days_of(
    pipeline: LoadedPipeline, reads: dict[Any, Read], records: list[Record]
) -> list[tuple[Any, int]]:
    """(day, newest offset) of each computed day of the pipeline that late records belong to."""
    mine = {s.topic for s in pipeline.spec.sources}
    relevant = [r for r in records if r[0] in mine]
    return [(day, max(r[2] for r in relevant)) for day in sorted(late_days(reads, relevant))]


def late_data_sensor(
    pipelines: Sequence[LoadedPipeline],
    *,
    name: str = "kappa_late_data_sensor",
    minimum_interval_seconds: int = 60,
    max_records_per_partition: int = 200_000,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
    translator: KappaTranslator = DEFAULT_TRANSLATOR,
) -> SensorDefinition:
    """Request a backfill of exactly the batch days that records arrived for after the
    day was computed. It reads the records appended since (no group, no commits); its
    cursor keeps the next offset to look at per topic partition."""
    batch_pipelines = [p for p in pipelines if p.spec.batch is not None]
    topics = sorted({s.topic for p in batch_pipelines for s in p.spec.sources})

    @sensor(
        name=name,
        asset_selection=AssetSelection.assets(*[translator.batch_key(p.spec) for p in batch_pipelines]),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Requests a backfill of batch days that late records arrived for.",
    )
    def _sensor(
        context: SensorEvaluationContext, kafka: KafkaResource, warehouse: WarehouseResource
    ) -> SensorResult | SkipReason:
        try:
            with warehouse.registry() as conn:
                reads = {p.name: registry.batch_day_reads(conn, p.name) for p in batch_pipelines}
        except ServiceUnavailable as exc:
            return SkipReason(f"registry not reachable: {exc.problem}")
        cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        records = _records_since(topics, reads, cursor, kafka, max_records_per_partition)
        requests = [
            RunRequest(
                run_key=f"late:{pipeline.name}:{day.isoformat()}:{newest}",
                asset_selection=[translator.batch_key(pipeline.spec)],
                partition_key=day.isoformat(),
                tags={"kappa/pipeline": pipeline.name, "kappa/reason": "late data"},
            )
            for pipeline in batch_pipelines
            for day, newest in _late_days_of(pipeline, reads[pipeline.name], records)
        ]
        return SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))

    return _sensor


def failed_day_sensor(
    pipelines: Sequence[LoadedPipeline],
    *,
    name: str = "kappa_failed_day_sensor",
    minimum_interval_seconds: int = 60,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
    translator: KappaTranslator = DEFAULT_TRANSLATOR,
) -> SensorDefinition:
    """Request a backfill of the batch days a scheduled check failed on, for specs with
    `batch.recompute_failed_days`. Once per failure: a recomputed day clears its mark, and
    the run key carries the failure's time."""
    chosen = [p for p in pipelines if p.spec.batch is not None and p.spec.batch.recompute_failed_days]

    @sensor(
        name=name,
        asset_selection=AssetSelection.assets(*[translator.batch_key(p.spec) for p in chosen]),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Requests a backfill of batch days that failed a data-quality check.",
    )
    def _sensor(context: SensorEvaluationContext, warehouse: WarehouseResource) -> SensorResult | SkipReason:
        if not chosen:
            return SkipReason("no spec sets batch.recompute_failed_days")
        try:
            with warehouse.registry() as conn:
                failed = {p.name: registry.failed_batch_days(conn, p.name) for p in chosen}
        except ServiceUnavailable as exc:
            return SkipReason(f"registry not reachable: {exc.problem}")
        requests = [
            RunRequest(
                run_key=f"check:{pipeline.name}:{day.isoformat()}:{failed_at.timestamp():.0f}",
                asset_selection=[translator.batch_key(pipeline.spec)],
                partition_key=day.isoformat(),
                tags={"kappa/pipeline": pipeline.name, "kappa/reason": "failed check"},
            )
            for pipeline in chosen
            for day, failed_at in sorted(failed[pipeline.name].items())
        ]
        if not requests:
            return SkipReason("no batch day has a failed check")
        return SensorResult(run_requests=requests)

    return _sensor
