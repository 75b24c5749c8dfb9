"""The multi-node stack's layout (pure): node ports, the bootstrap list, each node's
KRaft configuration with a three-voter quorum and replicated defaults, the processes
of two TaskManagers, and the topology `stack up` records for the other commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kappa_orch.stack.config import StackConfig
from kappa_orch.stack.flink import FlinkService
from kappa_orch.stack.kafka import KafkaService


def _props(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def test_three_nodes_form_one_quorum_with_replicated_defaults(tmp_path: Path) -> None:
    config = StackConfig(home=tmp_path, kafka_brokers=3, taskmanagers=2)
    assert config.kafka_node_ports() == [(1, 9092, 9093), (2, 9094, 9095), (3, 9096, 9097)]
    assert config.kafka_bootstrap == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    kafka = KafkaService(config)
    assert list(kafka.pid_files()) == ["kafka-1", "kafka-2", "kafka-3"]
    assert kafka.ports() == [9092, 9093, 9094, 9095, 9096, 9097]
    props = _props(kafka._write_config(2, 9094, 9095))
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095"
    assert props["default.replication.factor"] == "3" and props["min.insync.replicas"] == "2"
    assert props["offsets.topic.replication.factor"] == "3"
    assert props["log.dirs"] == str(tmp_path / "kafka" / "node-2" / "data")
    flink = FlinkService(config)
    assert list(flink.pid_files()) == [
        "flink-jobmanager",
        "flink-taskmanager",
        "flink-taskmanager-2",
        "flink-sql-gateway",
    ]


def test_the_default_stays_one_of_each(tmp_path: Path) -> None:
    config = StackConfig(home=tmp_path)
    assert config.kafka_bootstrap == "127.0.0.1:9092"
    kafka = KafkaService(config)
    assert list(kafka.pid_files()) == ["kafka"]
    props = _props(kafka._write_config(1, 9092, 9093))
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:9093"
    assert props["default.replication.factor"] == "1" and props["min.insync.replicas"] == "1"
    assert props["log.dirs"] == str(tmp_path / "kafka" / "data")  # where a single-node stack always kept it
    assert list(FlinkService(config).pid_files()) == [
        "flink-jobmanager",
        "flink-taskmanager",
        "flink-sql-gateway",
    ]


def test_storage_formatted_for_another_node_count_is_refused_with_the_fix(tmp_path: Path) -> None:
    KafkaService(StackConfig(home=tmp_path))._cluster_id()
    try:
        KafkaService(StackConfig(home=tmp_path, kafka_brokers=3))._cluster_id()
    except Exception as exc:
        assert "formatted for 1 node(s), not 3" in str(exc) and "remove" in exc.fix  # type: ignore[attr-defined]
    else:
        raise AssertionError("a 3-node start on 1-node storage was not refused")


def test_the_recorded_topology_is_what_env_and_status_use(tmp_path: Path) -> None:
    (tmp_path / "topology.json").write_text(json.dumps({"kafka_brokers": 3, "taskmanagers": 2}))
    cli = str(Path(sys.executable).parent / "kappa-orch")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAPPA_")}
    done = subprocess.run(
        [cli, "stack", "--home", str(tmp_path), "env"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "KAPPA_KAFKA_BOOTSTRAP=127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096" in done.stdout
