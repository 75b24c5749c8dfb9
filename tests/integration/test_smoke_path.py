"""The whole path on the real stack: Kafka -> Flink SQL (session cluster) -> PostgreSQL.

What happens to malformed events: the source reads raw strings and the SQL parses
them, so an event that is not JSON, lacks the account or has a non-numeric amount
is not dropped by the format. It is written to the rejects table keyed by its
(partition, offset) with the reason, and the test counts them.
"""

from __future__ import annotations

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
def pipeline(kafka: KafkaResource, warehouse: WarehouseResource) -> Iterator[SmokePipeline]:
    suffix = uuid.uuid4().hex[:8]
    pipeline = SmokePipeline(topic=f"it.payments.{suffix}", schema=f"it_{suffix}", group_id=f"it-{suffix}")
    kafka.create_topic(pipeline.topic, partitions=pipeline.partitions)
    pipeline.create_tables(warehouse, reset=True)
    yield pipeline
    with warehouse.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{pipeline.schema}" CASCADE'))
    kafka.delete_topic(pipeline.topic)


def submit(
    pipeline: SmokePipeline,
    *,
    kafka: KafkaResource,
    flink: FlinkResource,
    warehouse: WarehouseResource,
    startup_mode: str,
    group_id: str,
    run_label: str,
) -> str:
    setup, inserts = pipeline.flink_sql(
        kafka_bootstrap=kafka.bootstrap_servers,
        jdbc=warehouse.jdbc_options(),
        startup_mode=startup_mode,
        group_id=group_id,
        run_label=run_label,
    )
    job_id = flink.submit_sql(setup=setup, inserts=inserts, job_name=f"it-{pipeline.schema}-{run_label}")
    flink.wait_for_state(job_id, {"RUNNING"})
    return job_id


def test_kafka_flink_postgres_path_is_exact_and_idempotent(
    pipeline: SmokePipeline, kafka: KafkaResource, flink: FlinkResource, warehouse: WarehouseResource
) -> None:
    first = generate_events(100_000, accounts=300, seed=1)
    expected, malformed = aggregate(first)
    assert malformed == 20  # the generator breaks one event in 5,000
    assert kafka.produce(pipeline.topic, first, key=lambda v: str(hash(v) % 97)) == 100_000

    # 1. from the earliest offsets: the table equals the aggregates computed here
    job_id = submit(
        pipeline,
        kafka=kafka,
        flink=flink,
        warehouse=warehouse,
        startup_mode="earliest-offset",
        group_id=pipeline.group_id,
        run_label="run-1",
    )
    wait_until(
        lambda: (
            pipeline.read_totals(warehouse) == expected and len(pipeline.read_rejects(warehouse)) == malformed
        ),
        flink=flink,
        job_id=job_id,
    )
    rejects = pipeline.read_rejects(warehouse)
    assert sorted({reason for _, _, reason, _ in rejects}) == ["bad_amount", "missing_account", "not_json"]

    # a checkpoint after the table matched commits the group's offsets; then cancel
    end_offsets = kafka.end_offsets(pipeline.topic)
    wait_until(
        lambda: kafka.committed_offsets(pipeline.group_id, pipeline.topic) == end_offsets,
        flink=flink,
        job_id=job_id,
        timeout_s=60,
    )
    flink.cancel(job_id)
    assert flink.job(job_id).state == "CANCELED"
    assert sum(kafka.consumer_lag(pipeline.group_id, pipeline.topic).values()) == 0

    # 2. new events for new accounts, then the same job restarted from the committed offsets
    second = generate_events(20_000, accounts=100, account_offset=1_000, seed=2, malformed_every=2_000)
    expected_second, malformed_second = aggregate(second)
    assert not set(expected_second) & set(expected)
    kafka.produce(pipeline.topic, second)
    assert sum(kafka.consumer_lag(pipeline.group_id, pipeline.topic).values()) == 20_000
    expected_all = {**expected, **expected_second}

    job_id = submit(
        pipeline,
        kafka=kafka,
        flink=flink,
        warehouse=warehouse,
        startup_mode="group-offsets",
        group_id=pipeline.group_id,
        run_label="run-2",
    )
    wait_until(
        lambda: (
            pipeline.read_totals(warehouse) == expected_all
            and len(pipeline.read_rejects(warehouse)) == malformed + malformed_second
        ),
        flink=flink,
        job_id=job_id,
    )
    labels = [label for _, _, _, label in pipeline.read_rejects(warehouse)]
    # the first batch was not read again: its rejects still carry the first run's label
    assert labels.count("run-1") == malformed
    assert labels.count("run-2") == malformed_second
    flink.cancel(job_id)

    # 3. a full replay into the same table changes nothing: the upsert sink is idempotent
    job_id = submit(
        pipeline,
        kafka=kafka,
        flink=flink,
        warehouse=warehouse,
        startup_mode="earliest-offset",
        group_id=f"{pipeline.group_id}-replay",
        run_label="run-3",
    )
    wait_until(
        lambda: (
            {label for _, _, _, label in pipeline.read_rejects(warehouse)} == {"run-3"}
            and pipeline.read_totals(warehouse) == expected_all
        ),
        flink=flink,
        job_id=job_id,
    )
    flink.cancel(job_id)
    with warehouse.connect() as conn:
        rows, keys = conn.execute(
            text(f'SELECT count(*), count(DISTINCT account) FROM "{pipeline.schema}".account_totals')
        ).one()
        reject_rows = conn.execute(text(f'SELECT count(*) FROM "{pipeline.schema}".rejects')).scalar_one()
    assert rows == keys == len(expected_all)
    assert reject_rows == malformed + malformed_second


def test_flink_rejects_bad_sql_with_the_cause(flink: FlinkResource) -> None:
    from kappa_orch.errors import FlinkJobError

    with pytest.raises(FlinkJobError) as error:
        flink.submit_sql(
            setup=[],
            inserts=["INSERT INTO no_such_table SELECT 1"],
            job_name="it-bad-sql",
        )
    assert "no_such_table" in str(error.value)
    assert error.value.fix is not None
