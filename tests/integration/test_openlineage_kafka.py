"""OpenLineage's Kafka transport against the real broker (issue 14, point 5): the events
a deployment configures with `kafka://host:port/topic` arrive on the topic, one JSON
event per record, in order; a broker that is not there costs a warning, not the run."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from kappa_orch.lineage.emit import Emitter, Retry, make_transport, transport_config
from kappa_orch.lineage.events import Names
from kappa_orch.lineage.static import graph_events
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.spec.load import load_pipelines
from kappa_orch.stack.config import StackConfig
from scripts.validate_openlineage import validate
from tests.openlineage_events import EventFile

pytestmark = pytest.mark.integration
PIPELINES = load_pipelines(Path(__file__).resolve().parents[2] / "assets")


def test_events_reach_a_kafka_topic(
    stack: StackConfig, kafka: KafkaResource, tmp_path: Path, openlineage_events: EventFile
) -> None:
    topic = f"openlineage.events.{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, partitions=1)
    names = Names.of(deployment="prod", bootstrap=stack.kafka_bootstrap, warehouse_url=stack.warehouse_url)
    first = stack.kafka_bootstrap.split(",")[0]
    transport = make_transport(transport_config(f"kafka://{first}/{topic}", home=tmp_path))
    warnings: list[str] = []
    emitter = Emitter(transport, names, warn=warnings.append)
    events = graph_events(PIPELINES, names)
    for event in events:
        emitter.emit(event, "reference")
    assert emitter.flush(60) and not warnings
    records = kafka.read(topic, {}, max_records=1_000)
    received = [json.loads(r.value or b"{}") for r in records]
    assert [e["job"]["name"] for e in received] == [e.job.name for e in events]
    assert received[0]["job"]["namespace"] == "kappa-orch.prod"
    # as sent, valid against the specification's schemas (the file's events are checked after every test)
    assert [p for e in received for p in validate(e, openlineage_events.registry)] == []


def test_a_broker_that_is_not_there_costs_a_warning_not_the_run(tmp_path: Path) -> None:
    config = transport_config("kafka://127.0.0.1:1/openlineage.events", home=tmp_path)
    config["config"]["message.timeout.ms"] = "2000"
    warnings: list[str] = []
    names = Names.of(deployment="prod", bootstrap="127.0.0.1:1", warehouse_url="postgresql://x@127.0.0.1:1/w")
    emitter = Emitter(make_transport(config), names, retry=Retry(attempts=1), warn=warnings.append)
    emitter.emit(graph_events(PIPELINES[:1], names)[0], PIPELINES[0].name)  # returns at once
    assert emitter.flush(60)
    [warning] = warnings
    assert PIPELINES[0].name in warning and "the run goes on" in warning
