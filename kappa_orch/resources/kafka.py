"""Kafka as a Dagster resource: topics, offsets, consumer-group lag, produce and consume."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from kappa_orch.errors import ServiceError, ServiceUnavailable
from kappa_orch.resources.kafka_delivery import Deliveries
from kappa_orch.resources.kafka_offsets import (
    committed_once,
    event_time_lag,
    through_failover,
    timestamps_at_once,
    topic_ids_once,
    watermarks_once,
)


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int
    config: dict[str, str]


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None


class KafkaResource(ConfigurableResource):  # type: ignore[type-arg]
    """A Kafka cluster reached through confluent-kafka (librdkafka).

    Clients are created per call and closed after it: nothing connects at import or
    construction time.
    """

    bootstrap_servers: str = Field(description="Kafka bootstrap servers, host:port[,host:port].")
    client_id: str = Field(default="kappa-orch", description="client.id sent to the brokers.")
    request_timeout_s: float = Field(
        default=15.0, gt=0, description="Timeout of one admin or metadata request."
    )
    failover_s: float = Field(
        default=60.0,
        ge=0,
        description="How long offset reads wait for a replicated cluster to move a lost broker's "
        "partition leaders and group coordinators.",
    )
    dead_letter_retention_ms: int | None = Field(
        default=None,
        description="retention.ms of the dead-letter topics a deploy creates (-1: forever; None: broker's).",
    )
    extra_config: dict[str, str] = Field(
        default_factory=dict,
        description="Extra librdkafka settings (security.protocol, sasl.* ...) for every client.",
    )

    def _base(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
            "log_level": 3,  # librdkafka: errors only, no informational chatter on stderr
            **self.extra_config,
        }

    def _admin(self) -> Any:
        from confluent_kafka.admin import AdminClient

        return AdminClient(self._base())

    def _unavailable(self, what: str, exc: Exception) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"Kafka at {self.bootstrap_servers} did not answer while {what}: {exc}",
            "check that the broker runs (`kappa-orch stack status`) and that bootstrap_servers is right",
        )

    # -- topics -----------------------------------------------------------------

    def create_topic(
        self,
        name: str,
        *,
        partitions: int = 1,
        replication_factor: int = -1,
        config: Mapping[str, str] | None = None,
        exist_ok: bool = True,
    ) -> bool:
        """Create a topic; False when it already existed (and exist_ok). Replication factor
        -1: the brokers' default (1 on the single-node stack, 3 with min.insync.replicas 2 on
        the three-node one)."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

        topic = NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=replication_factor,
            config=dict(config or {}),
        )
        import time

        deadline = time.monotonic() + self.request_timeout_s
        # the admin client must outlive its futures, or they fail with "handle destroyed"
        admin = self._admin()
        while True:
            future = admin.create_topics([topic], request_timeout=self.request_timeout_s)[name]
            try:
                future.result(timeout=self.request_timeout_s)
                return True
            except KafkaException as exc:
                error = exc.args[0]
                if exist_ok and error.name() == "TOPIC_ALREADY_EXISTS":
                    return False
                # a topic of the same name that is still being deleted
                if error.retriable() and time.monotonic() < deadline:
                    time.sleep(0.5)
                    continue
                raise ServiceError(f"could not create topic {name!r}: {error.str()}") from exc

    def delete_topic(self, name: str) -> None:
        """Delete a topic and wait until the cluster no longer lists it."""
        import time

        admin = self._admin()
        future = admin.delete_topics([name], request_timeout=self.request_timeout_s)[name]
        future.result(timeout=self.request_timeout_s)
        deadline = time.monotonic() + self.request_timeout_s
        while name in self.list_topics() and time.monotonic() < deadline:
            time.sleep(0.2)

    def list_topics(self) -> list[str]:
        """The cluster's topics, without Kafka's internal ones (`__...`)."""
        try:
            metadata = self._admin().list_topics(timeout=self.request_timeout_s)
        except Exception as exc:
            raise self._unavailable("listing topics", exc) from exc
        return sorted(t for t in metadata.topics if not t.startswith("__"))

    def describe_topic(self, name: str) -> TopicInfo:
        """A topic's partition count and configuration (retention.ms, ...); an error when it
        does not exist."""
        from confluent_kafka.admin import (  # type: ignore[attr-defined]
            ConfigResource,
            ResourceType,
        )

        admin = self._admin()
        try:
            metadata = admin.list_topics(topic=name, timeout=self.request_timeout_s)
        except Exception as exc:
            raise self._unavailable(f"describing topic {name!r}", exc) from exc
        topic = metadata.topics.get(name)
        if topic is None or topic.error is not None:
            raise ServiceError(
                f"topic {name!r} does not exist on {self.bootstrap_servers}",
                "create it first, or check the topic name in the pipeline spec",
            )
        resource = ConfigResource(ResourceType.TOPIC, name)
        try:
            configs = admin.describe_configs([resource])[resource].result(timeout=self.request_timeout_s)
        except Exception as exc:  # a timeout or a broker error: the cluster did not answer
            raise self._unavailable(f"describing topic {name!r}", exc) from exc
        return TopicInfo(
            name=name,
            partitions=len(topic.partitions),
            config={key: entry.value for key, entry in configs.items() if entry.value is not None},
        )

    def topic_ids(self, names: Iterable[str]) -> dict[str, str | None]:
        """Each topic's id (Kafka's Uuid, as text), None for a topic that does not exist: a
        topic deleted and created again under the same name gets a new id."""
        names = sorted(set(names))
        if not names:
            return {}
        admin = self._admin()  # held until every answer is in (its futures die with it)
        try:
            return topic_ids_once(admin, names, self.request_timeout_s)
        except Exception as exc:  # a timeout or a broker error: the cluster did not answer
            raise self._unavailable(f"describing topics {names}", exc) from exc

    # -- offsets and lag ------------------------------------------------------------

    def watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        """Per partition, (earliest offset still held, offset of the next record); read
        through a replicated cluster's failover (`failover_s`)."""
        partitions = self.describe_topic(topic).partitions
        config = {**self._base(), "group.id": f"{self.client_id}-offsets"}
        once = functools.partial(watermarks_once, config, topic, partitions, self.request_timeout_s)
        return through_failover(once, self.failover_s)

    def first_timestamps(self, topic: str) -> dict[int, int | None]:
        """Per partition, the timestamp (ms) of the oldest record still held (None if empty)."""
        marks = self.watermarks(topic)
        held = {p: low for p, (low, high) in marks.items() if low < high}
        return dict.fromkeys(marks) | timestamps_at_once(self._reader(), topic, held, self.request_timeout_s)

    def _reader(self) -> dict[str, Any]:
        return {**self._base(), "group.id": f"{self.client_id}-reader", "enable.auto.commit": False}

    def event_time_lag_ms(self, group_id: str, topic: str) -> dict[int, int]:
        """Per partition, how far (ms, by record timestamp) the group's newest committed
        record trails the log's newest (kafka_offsets.event_time_lag)."""

        def stamp(offsets: Mapping[int, int]) -> Mapping[int, int | None]:
            return timestamps_at_once(self._reader(), topic, offsets, self.request_timeout_s)

        return event_time_lag(self.watermarks(topic), self.committed_offsets(group_id, topic), stamp)

    def read_timestamps(
        self, topic: str, partition: int, start: int, end: int, *, max_records: int = 100_000
    ) -> list[tuple[int, int]]:
        """(offset, timestamp ms) of the records in [start, end) of one partition, at most max_records."""
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer(
            {**self._base(), "group.id": f"{self.client_id}-reader", "enable.auto.commit": False}
        )
        found: list[tuple[int, int]] = []
        try:
            consumer.assign([TopicPartition(topic, partition, start)])
            last = min(end, start + max_records)
            position = start
            while position < last:
                messages = consumer.consume(min(1000, last - position), timeout=self.request_timeout_s)
                if not messages:
                    break
                for message in messages:
                    if message.error() is None and message.offset() is not None:
                        found.append((int(message.offset() or 0), int(message.timestamp()[1])))
                        position = int(message.offset() or 0) + 1
        finally:
            consumer.close()
        return [(o, t) for o, t in found if o < end]

    def delete_records_before(self, topic: str, offsets: Mapping[int, int]) -> None:
        """Delete each partition's records before the given offset (what retention does)."""
        from confluent_kafka import TopicPartition

        admin = self._admin()
        futures = admin.delete_records([TopicPartition(topic, p, o) for p, o in offsets.items()])
        for future in futures.values():
            future.result(timeout=self.request_timeout_s)

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the offset the next record will get."""
        return {p: high for p, (_, high) in self.watermarks(topic).items()}

    def earliest_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the oldest offset still held (after retention)."""
        return {p: low for p, (low, _) in self.watermarks(topic).items()}

    def committed_offsets(self, group_id: str, topic: str) -> dict[int, int | None]:
        """Per partition, the group's committed offset (None when it has none); read
        through a replicated cluster's failover (`failover_s`)."""
        partitions = self.describe_topic(topic).partitions
        config = {**self._base(), "group.id": group_id}
        once = functools.partial(committed_once, config, topic, partitions, self.request_timeout_s)
        committed = through_failover(once, self.failover_s)
        return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in committed}

    def consumer_lag(self, group_id: str, topic: str) -> dict[int, int]:
        """Per partition, records not yet committed by the group (all of them if none)."""
        watermarks = self.watermarks(topic)
        committed = self.committed_offsets(group_id, topic)
        lag = {}
        for partition, (low, high) in watermarks.items():
            position = committed.get(partition)
            lag[partition] = high - (low if position is None else max(position, low))
        return lag

    # -- data -----------------------------------------------------------------------

    def produce(
        self,
        topic: str,
        values: Iterable[bytes | str | Mapping[str, Any] | None],
        *,
        key: Callable[[Any], str | bytes | None] | None = None,
        timestamp_ms: Callable[[Any], int | None] | None = None,
        partition: int | None = None,
        max_message_bytes: int | None = None,
    ) -> int:
        """Produce values (dicts are JSON-encoded, None is a tombstone); wait for every
        delivery. Returns the count. With `partition`, every value goes to that partition,
        in order (else the key decides); `max_message_bytes` raises the producer's request
        size for large events (the topic's max.message.bytes must allow them too)."""
        from confluent_kafka import Producer

        settings: dict[str, Any] = {"linger.ms": 20, "batch.num.messages": 10000, "acks": "all"}
        if max_message_bytes is not None:
            settings["message.max.bytes"] = max_message_bytes + 1024
        # idempotent: a retried batch neither repeats nor reorders records within a partition
        producer = Producer({**self._base(), **settings, "enable.idempotence": True})
        deliveries = Deliveries()

        count = 0
        for value in values:
            payload = json.dumps(value).encode() if isinstance(value, Mapping) else value
            kwargs: dict[str, Any] = {"value": payload, "on_delivery": deliveries.on_delivery}
            if key is not None:
                kwargs["key"] = key(value)
            if timestamp_ms is not None and (ts := timestamp_ms(value)) is not None:
                kwargs["timestamp"] = ts
            if partition is not None:
                kwargs["partition"] = partition
            while True:
                try:
                    producer.produce(topic, **kwargs)
                    break
                except BufferError:
                    producer.poll(0.1)  # local queue full: let deliveries drain
            count += 1
            if count % 10000 == 0:
                producer.poll(0)
        if pending := producer.flush(self.request_timeout_s * 4):
            producer.purge()  # nothing queued goes out later, after this call has failed
            producer.flush(5)  # serves the purged records' reports
        if pending or deliveries.failures:
            raise deliveries.error(topic, count, pending)
        return count

    def consume(self, topic: str, *, max_records: int, timeout_s: float = 10.0) -> list[Record]:
        """Read up to max_records from the earliest offsets without joining or committing a group."""
        import time

        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        partitions = self.describe_topic(topic).partitions
        consumer = Consumer(
            {**self._base(), "group.id": f"{self.client_id}-reader", "enable.auto.commit": False}
        )
        records: list[Record] = []
        try:
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
            deadline = time.monotonic() + timeout_s
            while len(records) < max_records and time.monotonic() < deadline:
                for msg in consumer.consume(min(1000, max_records - len(records)), timeout=0.5):
                    if msg.error() is None:
                        ts_type, ts = msg.timestamp()
                        records.append(
                            Record(
                                int(msg.partition() or 0),
                                int(msg.offset() or 0),
                                ts if ts_type else None,
                                msg.key(),
                                msg.value(),
                            )
                        )
        finally:
            consumer.close()
        return records

    def read(
        self, topic: str, start: Mapping[int, int], *, max_records: int, timeout_s: float = 10.0
    ) -> list[Record]:
        """Records from `start` (partition -> offset; a partition not in it, or an offset
        no longer held, reads from the earliest held) up to the end offsets of this
        moment, at most `max_records`, without joining or committing a group."""
        import time

        from confluent_kafka import Consumer, KafkaException, TopicPartition

        held = self.watermarks(topic)
        ends = {p: high for p, (_, high) in held.items()}
        todo = {p: max(low, start.get(p, low)) for p, (low, _) in held.items()}
        todo = {p: o for p, o in todo.items() if o < ends[p]}
        records: list[Record] = []
        if not todo:
            return records
        consumer = Consumer(
            {**self._base(), "group.id": f"{self.client_id}-reader", "enable.auto.commit": False}
        )
        try:
            consumer.assign([TopicPartition(topic, p, o) for p, o in todo.items()])
            deadline = time.monotonic() + timeout_s
            while todo and len(records) < max_records and time.monotonic() < deadline:
                for msg in consumer.consume(min(1000, max_records - len(records)), timeout=0.5):
                    partition, offset = int(msg.partition() or 0), int(msg.offset() or 0)
                    if msg.error() is not None or partition not in todo or offset >= ends[partition]:
                        continue
                    ts_type, ts = msg.timestamp()
                    records.append(Record(partition, offset, ts if ts_type else None, msg.key(), msg.value()))
                    if offset + 1 >= ends[partition]:
                        del todo[partition]
        except KafkaException as exc:
            raise self._unavailable(f"reading topic {topic!r}", exc) from exc
        finally:
            consumer.close()
        return records[:max_records]
