"""Resources against a dead address: clear errors, no hangs (no servers needed)."""

from __future__ import annotations

import socket

import pytest

from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.errors import ServiceUnavailable
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.resources.warehouse import WarehouseResource


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_dead_kafka_is_named() -> None:
    port = _closed_port()
    kafka = KafkaResource(bootstrap_servers=f"127.0.0.1:{port}", request_timeout_s=1.5)
    with pytest.raises(ServiceUnavailable) as error:
        kafka.list_topics()
    assert f"127.0.0.1:{port}" in error.value.problem
    assert "kappa-orch stack status" in (error.value.fix or "")


def test_dead_flink_is_named() -> None:
    port = _closed_port()
    flink = FlinkResource(rest_url=f"http://127.0.0.1:{port}", sql_gateway_url=f"http://127.0.0.1:{port}")
    with pytest.raises(ServiceUnavailable, match="did not answer"):
        flink.list_jobs()
    with pytest.raises(ServiceUnavailable, match="SQL Gateway"):
        flink.submit_sql(setup=[], inserts=["INSERT INTO t SELECT 1"], job_name="x")


def test_dead_warehouse_is_named() -> None:
    port = _closed_port()
    warehouse = WarehouseResource(url=f"postgresql+psycopg2://u:p@127.0.0.1:{port}/wh", connect_timeout_s=1)
    with pytest.raises(ServiceUnavailable) as error, warehouse.connect():
        pass
    assert f"127.0.0.1:{port}/wh" in error.value.problem


def test_jdbc_options_follow_the_sqlalchemy_url() -> None:
    warehouse = WarehouseResource(url="postgresql+psycopg2://kappa:secret@10.1.2.3:6543/analytics")
    assert warehouse.jdbc_options() == {
        "url": "jdbc:postgresql://10.1.2.3:6543/analytics?reWriteBatchedInserts=true",  # multi-row upserts
        "username": "kappa",
        "password": "secret",
    }
    with pytest.raises(ValueError, match="only PostgreSQL"):
        WarehouseResource(url="sqlite:///x.db").jdbc_options()


def test_submit_needs_an_insert() -> None:
    flink = FlinkResource(rest_url="http://127.0.0.1:1", sql_gateway_url="http://127.0.0.1:1")
    with pytest.raises(ValueError, match="at least one INSERT"):
        flink.submit_sql(setup=[], inserts=[], job_name="x")


def test_an_offset_read_that_outlasts_the_failover_is_one_clear_error() -> None:
    # issue 15, bad input: a broker that never comes back made the raw client error escape
    from confluent_kafka import KafkaError, KafkaException

    from kappa_orch.errors import ServiceUnavailable
    from kappa_orch.resources.kafka_offsets import through_failover

    calls = []

    def lost() -> None:
        calls.append(1)
        raise KafkaException(KafkaError(KafkaError.LEADER_NOT_AVAILABLE))

    with pytest.raises(ServiceUnavailable) as refused:
        through_failover(lost, 1.5)
    assert len(calls) >= 2  # tried again while the cluster might be moving the leader
    assert "within 2s" in refused.value.problem and "kappa-orch stack up" in (refused.value.fix or "")

    def broken() -> None:
        raise KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))

    with pytest.raises(KafkaException):  # not a failover: at once, as it is
        through_failover(broken, 30)
