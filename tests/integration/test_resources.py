"""The resources' less travelled paths on the real stack: topic metadata, reading
records back, and stop-with-savepoint followed by a resume that keeps the state."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.resources.warehouse import WarehouseResource
from tests.integration.expect import aggregate, wait_until
from tests.integration.smoke import SmokePipeline, generate_events

pytestmark = pytest.mark.integration


@pytest.fixture
def topic(kafka: KafkaResource) -> Iterator[str]:
    name = f"it.resources.{uuid.uuid4().hex[:8]}"
    assert kafka.create_topic(name, partitions=2, config={"retention.ms": "86400000"})
    yield name
    kafka.delete_topic(name)


def test_topic_metadata_offsets_and_records(kafka: KafkaResource, topic: str) -> None:
    assert kafka.create_topic(topic, partitions=2) is False  # exists: reported, not an error
    info = kafka.describe_topic(topic)
    assert info.partitions == 2
    assert info.config["retention.ms"] == "86400000"
    assert topic in kafka.list_topics()

    values = [{"n": i} for i in range(1_000)]
    assert kafka.produce(topic, values, key=lambda v: str(v["n"])) == 1_000  # type: ignore[index]
    assert sum(kafka.end_offsets(topic).values()) == 1_000
    assert kafka.earliest_offsets(topic) == {0: 0, 1: 0}
    assert kafka.committed_offsets("nobody", topic) == {0: None, 1: None}
    assert sum(kafka.consumer_lag("nobody", topic).values()) == 1_000

    records = kafka.consume(topic, max_records=1_000)
    assert sorted(int(r.value.decode().split(":")[1].rstrip("}")) for r in records if r.value) == list(
        range(1_000)
    )
    assert {r.partition for r in records} == {0, 1}


def test_unknown_topic_is_a_clear_error(kafka: KafkaResource) -> None:
    from kappa_orch.errors import KappaError

    with pytest.raises(KappaError, match=r"topic 'no\.such\.topic' does not exist"):
        kafka.describe_topic("no.such.topic")


def test_stop_with_savepoint_then_resume_keeps_the_aggregate_state(
    kafka: KafkaResource, flink: FlinkResource, warehouse: WarehouseResource
) -> None:
    suffix = uuid.uuid4().hex[:8]
    pipeline = SmokePipeline(
        topic=f"it.savepoint.{suffix}", schema=f"it_sp_{suffix}", group_id=f"sp-{suffix}"
    )
    kafka.create_topic(pipeline.topic, partitions=pipeline.partitions)
    pipeline.create_tables(warehouse, reset=True)
    try:
        first = generate_events(30_000, accounts=50, seed=3)
        kafka.produce(pipeline.topic, first)
        expected, _ = aggregate(first)
        setup, inserts = pipeline.flink_sql(
            kafka_bootstrap=kafka.bootstrap_servers,
            jdbc=warehouse.jdbc_options(),
            startup_mode="earliest-offset",
        )
        job_id = flink.submit_sql(setup=setup, inserts=inserts, job_name=f"it-sp-{suffix}")
        flink.wait_for_state(job_id, {"RUNNING"})
        wait_until(lambda: pipeline.read_totals(warehouse) == expected, flink=flink, job_id=job_id)
        checkpoint = None
        deadline = time.monotonic() + 60
        while checkpoint is None and time.monotonic() < deadline:
            checkpoint = flink.last_checkpoint(job_id)
            time.sleep(1)
        assert checkpoint is not None and checkpoint.checkpoint_id >= 1

        savepoint = flink.stop_with_savepoint(job_id)
        assert savepoint.startswith("file:")
        assert flink.job(job_id).state == "FINISHED"

        # the same accounts again: correct totals need the restored per-account state
        second = generate_events(10_000, accounts=50, seed=4)
        kafka.produce(pipeline.topic, second)
        expected_all, _ = aggregate(first + second)
        assert expected_all != expected
        job_id = flink.submit_sql(
            setup=setup, inserts=inserts, job_name=f"it-sp-{suffix}", savepoint_path=savepoint
        )
        flink.wait_for_state(job_id, {"RUNNING"})
        wait_until(lambda: pipeline.read_totals(warehouse) == expected_all, flink=flink, job_id=job_id)
        flink.cancel(job_id)
    finally:
        with warehouse.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{pipeline.schema}" CASCADE'))
        kafka.delete_topic(pipeline.topic)
