"""Integration fixtures: resources pointed at the stack that `kappa-orch stack up` started.

The tests never start or mock services themselves; scripts/test.sh brings the real
stack up first. A missing stack is an error, not a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.stack.config import StackConfig, recorded_topology
from kappa_orch.stack.manager import status

ROOT = Path(__file__).resolve().parents[2]


def _config() -> StackConfig:
    env = os.environ
    home = Path(env.get("KAPPA_HOME", ROOT / ".kappa")).resolve()
    brokers, taskmanagers = recorded_topology(home)  # as the last `stack up` started it
    return StackConfig(
        home=home,
        kafka_brokers=brokers,
        taskmanagers=taskmanagers,
        kafka_port=int(env.get("KAPPA_KAFKA_PORT", 9092)),
        kafka_controller_port=int(env.get("KAPPA_KAFKA_CONTROLLER_PORT", 9093)),
        flink_rest_port=int(env.get("KAPPA_FLINK_REST_PORT", 8081)),
        flink_rpc_port=int(env.get("KAPPA_FLINK_RPC_PORT", 6123)),
        sql_gateway_port=int(env.get("KAPPA_SQL_GATEWAY_PORT", 8083)),
        postgres_port=int(env.get("KAPPA_POSTGRES_PORT", 5432)),
    )


@pytest.fixture(scope="session")
def stack() -> StackConfig:
    config = _config()
    down = [s for s in status(config) if s.state != "running"]
    if down:
        pytest.fail(
            "the local stack is not running: "
            + ", ".join(f"{s.name} is {s.state}" for s in down)
            + ". Start it with `kappa-orch stack up` (scripts/test.sh does)."
        )
    return config


@pytest.fixture(scope="session")
def kafka(stack: StackConfig) -> KafkaResource:
    resource: KafkaResource = stack.platform().resources()["kafka"]
    return resource


@pytest.fixture(scope="session")
def flink(stack: StackConfig) -> FlinkResource:
    # no checkpoint folder: tests that restore from checkpoints say so (test_faults)
    return FlinkResource(
        rest_url=stack.flink_rest_url,
        sql_gateway_url=stack.sql_gateway_url,
        tls_ca=str(stack.flink_tls_ca),
        tls_cert=str(stack.flink_tls_cert),
    )


@pytest.fixture(scope="session")
def warehouse(stack: StackConfig) -> Iterator[WarehouseResource]:
    resource: WarehouseResource = stack.platform().resources()["warehouse"]
    yield resource
    resource.dispose()
