"""The Flink cluster's generated configuration (no cluster started)."""

from __future__ import annotations

from pathlib import Path

from kappa_orch.stack.config import StackConfig
from kappa_orch.stack.flink import FlinkService, _flatten


def test_flatten_nested_yaml() -> None:
    assert _flatten({"a": {"b": 1, "c": {"d": "x"}}, "e": 2}) == {"a.b": 1, "a.c.d": "x", "e": 2}


def test_cluster_binds_loopback_with_configured_ports_and_checkpoints(tmp_path: Path) -> None:
    config = StackConfig(home=tmp_path, flink_rest_port=18081, sql_gateway_port=18083, taskmanager_slots=6)
    settings = FlinkService(config).settings()
    assert settings["rest.port"] == 18081
    assert settings["sql-gateway.endpoint.rest.port"] == 18083
    assert settings["taskmanager.numberOfTaskSlots"] == 6
    for key in ("rest.bind-address", "jobmanager.bind-host", "taskmanager.bind-host"):
        assert settings[key] == "127.0.0.1"
    assert settings["execution.checkpointing.dir"] == (tmp_path / "flink" / "checkpoints").as_uri()
    # the wheel's JVM flags for Java 17 are kept
    assert "--add-opens" in settings["env.java.opts.all"]
