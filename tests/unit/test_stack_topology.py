"""The multi-node stack's layout (pure): node ports, the bootstrap list, each node's
KRaft configuration with a three-voter quorum and replicated defaults, the processes
of two TaskManagers, and the topology `stack up` records for the other commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.slow
def test_the_recorded_topology_is_what_env_and_status_use(tmp_path: Path) -> None:
    (tmp_path / "topology.json").write_text(json.dumps({"kafka_brokers": 3, "taskmanagers": 2}))
    cli = str(Path(sys.executable).parent / "kappa-orch")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAPPA_")}
    done = subprocess.run(
        [cli, "stack", "--home", str(tmp_path), "env"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "KAPPA_KAFKA_BOOTSTRAP=127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096" in done.stdout


def test_checkpoint_storage_is_a_configurable_uri(tmp_path: Path) -> None:
    # issue 15, point 3: Flink's checkpoints and savepoints go where the stack is told
    local = FlinkService(StackConfig(home=tmp_path)).settings()
    assert local["execution.checkpointing.dir"] == (tmp_path / "flink" / "checkpoints").resolve().as_uri()
    assert "s3.endpoint" not in local
    config = StackConfig(
        home=tmp_path,
        checkpoint_uri="s3://bucket/cp",
        savepoint_uri="s3://bucket/sp",
        s3_endpoint="http://127.0.0.1:9000",
    )
    settings = FlinkService(config).settings()
    assert settings["execution.checkpointing.dir"] == "s3://bucket/cp"
    assert settings["execution.checkpointing.savepoint-dir"] == "s3://bucket/sp"
    assert settings["s3.endpoint"] == "http://127.0.0.1:9000" and settings["s3.path.style.access"] is True
    # the credentials stay in the environment, never in Flink's configuration file
    assert not [key for key in settings if "key" in key or "secret" in key]
    assert config.on_s3 and not StackConfig(home=tmp_path).on_s3


def test_the_recorded_storage_is_what_a_later_up_uses(tmp_path: Path) -> None:
    # a later `stack up` (e.g. to restart a killed JobManager) keeps the storage it was
    # started with, not the default folder
    from kappa_orch.stack.config import recorded_storage

    assert recorded_storage(tmp_path) == (None, None, None)
    recorded = {
        "kafka_brokers": 1,
        "taskmanagers": 1,
        "checkpoint_uri": "s3://b/cp",
        "s3_endpoint": "http://e",
    }
    (tmp_path / "topology.json").write_text(json.dumps(recorded))
    assert recorded_storage(tmp_path) == ("s3://b/cp", None, "http://e")
    (tmp_path / "topology.json").write_text("[]")
    assert recorded_storage(tmp_path) == (None, None, None)


def test_a_checkpoint_folder_that_refuses_writes_is_named(tmp_path: Path) -> None:
    from kappa_orch.errors import StackError
    from kappa_orch.stack.object_store import check_writable

    check_writable((tmp_path / "cp").as_uri(), s3_endpoint=None)
    assert list((tmp_path / "cp").iterdir()) == []  # the probe is gone again
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    for uri, said in (((blocked / "cp").as_uri(), "refuses writes"), ("hdfs://nn/cp", "cannot serve")):
        try:
            check_writable(uri, s3_endpoint=None)
        except StackError as exc:
            assert said in exc.problem and exc.fix
        else:
            raise AssertionError(f"{uri} was not refused")


def test_benchmarks_and_tests_find_the_stack_the_environment_names(tmp_path: Path) -> None:
    # found: bench/sandbox.py hard-coded the repository's .kappa and the default ports, so
    # a benchmark failed to connect to a stack started elsewhere (issue 27)
    environ = {
        "KAPPA_HOME": str(tmp_path / "stack"),
        "KAPPA_KAFKA_PORT": "19092",
        "KAPPA_POSTGRES_PORT": "15432",
    }
    stack = StackConfig.from_environment(environ, tmp_path / "unused")
    assert stack.home == (tmp_path / "stack").resolve()
    assert (stack.kafka_port, stack.postgres_port, stack.flink_rest_port) == (19092, 15432, 8081)
    default = StackConfig.from_environment({}, tmp_path / "repo" / ".kappa")
    assert default.home == (tmp_path / "repo" / ".kappa").resolve() and default.kafka_port == 9092
