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


def test_ha_adds_a_zookeeper_on_loopback_that_takes_only_authenticated_clients(tmp_path: Path) -> None:
    from kappa_orch.stack import zookeeper

    config = StackConfig(home=tmp_path, ha=True, zookeeper_port=12181)
    service = FlinkService(config)
    # ZooKeeper starts first and is stopped last; its port is checked before a start
    assert next(iter(service.pid_files())) == zookeeper.PROCESS and 12181 in service.ports()
    settings = service.settings()
    assert settings["high-availability.type"] == "zookeeper"
    assert settings["high-availability.zookeeper.quorum"] == "127.0.0.1:12181"
    assert settings["high-availability.storageDir"] == (tmp_path / "flink" / "checkpoints").as_uri() + "/_ha"
    assert settings["high-availability.zookeeper.client.acl"] == "creator"
    # the JAAS file joins the wheel's JVM flags (Java 17's --add-opens are kept)
    opts = settings["env.java.opts.all"]
    assert (
        "--add-opens" in opts and f"-Djava.security.auth.login.config={tmp_path}/flink/conf/jaas.conf" in opts
    )
    cfg = dict(line.split("=", 1) for line in zookeeper.zoo_cfg(config).splitlines())
    assert cfg["clientPortAddress"] == "127.0.0.1" and cfg["clientPort"] == "12181"
    assert cfg["admin.enableServer"] == "false"  # else an HTTP server on 0.0.0.0:8080
    assert cfg["sessionRequireClientSASLAuth"] == "true" and cfg["enforce.auth.schemes"] == "sasl"
    # one password for server and clients, derived from the job key: a restarted
    # JobManager agrees with the ZooKeeper that kept running
    password = zookeeper.zookeeper_password("k" * 64)
    assert password == zookeeper.zookeeper_password("k" * 64) != zookeeper.zookeeper_password("j" * 64)
    text = zookeeper.jaas(password)
    assert f'user_flink="{password}"' in text and f'password="{password}"' in text


def test_ha_off_runs_no_zookeeper(tmp_path: Path) -> None:
    service = FlinkService(StackConfig(home=tmp_path))
    assert "flink-zookeeper" not in service.pid_files() and 2181 not in service.ports()
    assert str(service.settings().get("high-availability.type", "none")).lower() == "none"
