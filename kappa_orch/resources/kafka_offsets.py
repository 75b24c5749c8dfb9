"""Offset reads that survive a replicated cluster's failover: when a broker is lost, its
partitions' leadership and its groups' coordinators move to the others (within the
brokers' session timeout). A read that meets the move is tried again, each time with a
new client (fresh metadata names the new leader; an old client keeps asking the dead
one), for a bounded time."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def through_failover(call: Callable[[], T], seconds: float) -> T:
    """`call`, tried again (1 s apart, at most `seconds`) while the cluster moves a
    partition's leader or a group's coordinator; any other error at once. A cluster that
    is still moving at the deadline (a broker that never came back, a lost quorum) is a
    ServiceUnavailable that says so."""
    from confluent_kafka import KafkaError, KafkaException

    from kappa_orch.errors import ServiceUnavailable

    moving = {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._DESTROY_BROKER,  # the client dropped its handle to the lost broker
    }
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call()
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            code = error.code() if isinstance(error, KafkaError) else None
            if code not in moving:
                raise
            if time.monotonic() > deadline:
                raise ServiceUnavailable(
                    f"Kafka did not serve the offsets within {seconds:.0f}s ({error}): a broker "
                    "leading a partition is down and no replica took over, or the cluster lost "
                    "its quorum",
                    "`kappa-orch stack status` names the dead broker(s); start them "
                    "(`kappa-orch stack up` starts only those)",
                ) from exc
            time.sleep(1.0)


def watermarks_once(
    config: Mapping[str, Any], topic: str, partitions: int, timeout_s: float
) -> dict[int, tuple[int, int]]:
    """Per partition, (earliest held, next offset), read with a new client."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**config, "enable.auto.commit": False})
    try:
        held = {}
        for p in range(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            held[p] = (int(low), int(high))
        return held
    finally:
        consumer.close()


def committed_once(config: Mapping[str, Any], topic: str, partitions: int, timeout_s: float) -> list[Any]:
    """The group's (config's group.id) committed offsets, read with a new client."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**config, "enable.auto.commit": False})
    try:
        return list(
            consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=timeout_s)
        )
    finally:
        consumer.close()


def topic_ids_once(admin: Any, names: list[str], timeout_s: float) -> dict[str, str | None]:
    """Each topic's id through one AdminClient (None: no such topic); any other error raised."""
    from confluent_kafka import KafkaError, KafkaException, TopicCollection

    ids: dict[str, str | None] = {}
    for name, future in admin.describe_topics(TopicCollection(names)).items():
        try:
            ids[name] = str(future.result(timeout=timeout_s).topic_id)
        except KafkaException as exc:
            if not (exc.args and exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
                raise
            ids[name] = None
    return ids


def timestamps_at_once(
    config: dict[str, Any], topic: str, offsets: Mapping[int, int], timeout_s: float
) -> dict[int, int | None]:
    """Per partition, the timestamp (ms) of the record at `offsets[partition]` (None when
    none was read there)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(config)
    result: dict[int, int | None] = {}
    try:
        for partition, offset in offsets.items():
            result[partition] = None
            consumer.assign([TopicPartition(topic, partition, offset)])
            message = consumer.poll(timeout_s)
            if message is not None and message.error() is None:
                result[partition] = message.timestamp()[1]
    finally:
        consumer.close()
    return result


def event_time_lag(
    watermarks: Mapping[int, tuple[int, int]],
    committed: Mapping[int, int | None],
    stamp: Callable[[Mapping[int, int]], Mapping[int, int | None]],
) -> dict[int, int]:
    """Per partition, how far (ms, by record timestamp) a group's newest committed record
    trails the log's newest: 0 when it committed everything; from the oldest held record
    when it committed nothing. `stamp`: the timestamps at given offsets (pure otherwise)."""
    behind = {}
    for partition, (low, high) in watermarks.items():
        position = max(committed.get(partition) or low, low)
        if position < high:
            behind[partition] = (high - 1, max(position - 1, low))
    newest = stamp({p: last for p, (last, _) in behind.items()}) if behind else {}
    done = stamp({p: at for p, (_, at) in behind.items()}) if behind else {}
    return {
        p: max(0, (newest.get(p) or 0) - (done.get(p) or newest.get(p) or 0)) if p in behind else 0
        for p in watermarks
    }
