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

from kappa_orch.dagster.names import FAILED_DAY_SENSOR, LATE_DATA_SENSOR
from kappa_orch.dagster.translator import DEFAULT_TRANSLATOR, KappaTranslator
from kappa_orch.errors import ServiceUnavailable
from kappa_orch.lifecycle.batch import late_days
from kappa_orch.registry import store as registry
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.resources.kafka import Record as KafkaRecord
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.model import LoadedPipeline

Read = dict[str, dict[str, int]]  # topic -> partition -> the offset a computed day read up to
Record = tuple[str, int, int, int]  # topic, partition, offset, event time (ms)


def _records_since(
    topics: Sequence[str],
    reads: dict[str, dict[Any, Read]],
    cursor: dict[str, int],
    kafka: KafkaResource,
    max_records: int,
) -> list[tuple[str, KafkaRecord]]:
    """The records appended since the computed days read each partition (or since the
    cursor, which this advances): from the lowest offset a computed day read up to, also
    on a first tick (no cursor yet) and after a restart, never from the topic's end."""
    records: list[tuple[str, KafkaRecord]] = []
    for topic in topics:
        starts: dict[int, int] = {}
        for partition, (low, high) in kafka.watermarks(topic).items():
            floors = [
                int(read[topic][str(partition)])
                for days in reads.values()
                for read in days.values()
                if str(partition) in read.get(topic, {})
            ]
            key = f"{topic}/{partition}"
            # no computed day read this partition yet: nothing can be late in it
            starts[partition] = max(cursor.get(key, 0), min(floors), low) if floors else high
        found = kafka.read(topic, starts, max_records=max_records * max(1, len(starts)))
        for partition, start in starts.items():
            key = f"{topic}/{partition}"
            mine = [r.offset for r in found if r.partition == partition]
            cursor[key] = max(mine) + 1 if mine else max(start, cursor.get(key, 0))
        records += [(topic, r) for r in found]
    return records


def event_times(pipeline: LoadedPipeline, records: Sequence[tuple[str, KafkaRecord]]) -> list[Record]:
    """(topic, partition, offset, event time) of the records of the pipeline's sources,
    the event time read from the payload as the batch job reads it (a late event's Kafka
    timestamp is when it arrived, days after its day); a record without a valid event time
    is a dead letter, which changes no day (pure)."""
    event_from = {s.topic: s.event_time.from_column if s.event_time else None for s in pipeline.spec.sources}
    found: list[Record] = []
    for topic, record in records:
        if topic not in event_from:
            continue
        column = event_from[topic]
        if column is None:
            if record.timestamp_ms is not None:
                found.append((topic, record.partition, record.offset, record.timestamp_ms))
            continue
        try:
            value = json.loads(record.value or b"").get(column)
        except (ValueError, AttributeError):
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            found.append((topic, record.partition, record.offset, value))
    return found


def _late_days_of(
    pipeline: LoadedPipeline, reads: dict[Any, Read], records: list[tuple[str, KafkaRecord]]
) -> list[tuple[Any, int]]:
    """(day, newest offset) of each computed day of the pipeline that late records belong to."""
    relevant = event_times(pipeline, records)
    return [(day, max(r[2] for r in relevant)) for day in sorted(late_days(reads, relevant))]


def late_data_sensor(
    pipelines: Sequence[LoadedPipeline],
    *,
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
        name=LATE_DATA_SENSOR,
        asset_selection=AssetSelection.assets(*[translator.key("batch", p.spec) for p in batch_pipelines]),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Requests a backfill of batch days that late records arrived for.",
    )
    def _sensor(
        context: SensorEvaluationContext, kafka: KafkaResource, warehouse: WarehouseResource
    ) -> SensorResult | SkipReason:
        try:
            with registry.session(warehouse) as conn:
                reads = {p.name: registry.batch_day_reads(conn, p.name) for p in batch_pipelines}
        except ServiceUnavailable as exc:
            return SkipReason(f"registry not reachable: {exc.problem}")
        cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        records = _records_since(topics, reads, cursor, kafka, max_records_per_partition)
        requests = [
            RunRequest(
                run_key=f"late:{pipeline.name}:{day.isoformat()}:{newest}",
                asset_selection=[translator.key("batch", pipeline.spec)],
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
    minimum_interval_seconds: int = 60,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
    translator: KappaTranslator = DEFAULT_TRANSLATOR,
) -> SensorDefinition:
    """Request a backfill of the batch days a scheduled check failed on, for specs with
    `batch.recompute_failed_days`. Once per failure: a recomputed day clears its mark, and
    the run key carries the failure's time."""
    chosen = [p for p in pipelines if p.spec.batch is not None and p.spec.batch.recompute_failed_days]

    @sensor(
        name=FAILED_DAY_SENSOR,
        asset_selection=AssetSelection.assets(*[translator.key("batch", p.spec) for p in chosen]),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Requests a backfill of batch days that failed a data-quality check.",
    )
    def _sensor(context: SensorEvaluationContext, warehouse: WarehouseResource) -> SensorResult | SkipReason:
        if not chosen:
            return SkipReason("no spec sets batch.recompute_failed_days")
        try:
            with registry.session(warehouse) as conn:
                failed = {p.name: registry.failed_batch_days(conn, p.name) for p in chosen}
        except ServiceUnavailable as exc:
            return SkipReason(f"registry not reachable: {exc.problem}")
        requests = [
            RunRequest(
                run_key=f"check:{pipeline.name}:{day.isoformat()}:{failed_at.timestamp():.0f}",
                asset_selection=[translator.key("batch", pipeline.spec)],
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
