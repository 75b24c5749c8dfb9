"""`kappa-orch stack ...`: the local Kafka, Flink and PostgreSQL."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from kappa_orch.cli import F, main
from kappa_orch.stack.config import (
    STORAGE,
    TOPOLOGY,
    StackConfig,
    recorded_ha,
    recorded_storage,
    recorded_topology,
)


def _port(name: str, env: str, default: int, help_text: str) -> Callable[[F], F]:
    return click.option(
        name, envvar=env, default=default, show_default=True, type=int, help=f"{help_text} [env {env}]"
    )


@main.group()
@click.option(
    "--home",
    envvar="KAPPA_HOME",
    default=".kappa",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the stack's jars, data, logs and pid files [env KAPPA_HOME].",
)
@_port("--kafka-port", "KAPPA_KAFKA_PORT", 9092, "Kafka broker port.")
@_port("--kafka-controller-port", "KAPPA_KAFKA_CONTROLLER_PORT", 9093, "Kafka KRaft controller port.")
@_port("--flink-rest-port", "KAPPA_FLINK_REST_PORT", 8081, "Flink REST/UI port.")
@_port("--flink-rpc-port", "KAPPA_FLINK_RPC_PORT", 6123, "Flink JobManager RPC port.")
@_port("--sql-gateway-port", "KAPPA_SQL_GATEWAY_PORT", 8083, "Flink SQL Gateway port.")
@_port("--postgres-port", "KAPPA_POSTGRES_PORT", 5432, "PostgreSQL port.")
@_port("--zookeeper-port", "KAPPA_ZOOKEEPER_PORT", 2181, "ZooKeeper port (with `up --ha`).")
@click.option(
    "--timeout",
    envvar="KAPPA_START_TIMEOUT",
    default=120.0,
    show_default=True,
    type=float,
    help="Seconds to wait for each service to answer [env KAPPA_START_TIMEOUT].",
)
@click.pass_context
def stack(ctx: click.Context, /, home: Path, timeout: float, **ports: Any) -> None:
    """The local stack: Kafka, Flink and PostgreSQL on 127.0.0.1 (one Kafka node and one
    TaskManager unless `stack up --brokers N --taskmanagers N` asked for more; the other
    commands use the counts the last `up` recorded in the stack's folder)."""
    brokers, taskmanagers = recorded_topology(home.resolve())
    checkpoints, savepoints, s3_endpoint = recorded_storage(home.resolve())
    ctx.obj = StackConfig(
        home=home.resolve(),
        kafka_brokers=brokers,
        taskmanagers=taskmanagers,
        checkpoint_uri=checkpoints,
        savepoint_uri=savepoints,
        s3_endpoint=s3_endpoint,
        ha=recorded_ha(home.resolve()),
        start_timeout_s=timeout,
        **ports,  # kafka_port, kafka_controller_port, flink_rest_port, ... as the options name them
    )


def _print_status(statuses: list[Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([asdict(s) for s in statuses], indent=2))
        return
    colours = {"running": "green", "stopped": "white", "unhealthy": "red"}
    for s in statuses:
        line = f"{s.name:<9} {click.style(f'{s.state:<9}', fg=colours.get(s.state))} {s.address}"
        if s.version:
            line += f"  v{s.version}"
        click.echo(line)
        if s.detail:
            click.echo(f"{'':<20}{s.detail}")


@stack.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option(
    "--brokers",
    envvar="KAPPA_KAFKA_BROKERS",
    type=click.IntRange(1, 9),
    help="Kafka nodes (each broker and controller; 3: topics at replication factor 3, "
    "min.insync.replicas 2) [env KAPPA_KAFKA_BROKERS; default: as last started, else 1].",
)
@click.option(
    "--taskmanagers",
    envvar="KAPPA_TASKMANAGERS",
    type=click.IntRange(1, 16),
    help="Flink TaskManagers [env KAPPA_TASKMANAGERS; default: as last started, else 1].",
)
@click.option(
    "--checkpoint-uri",
    envvar="KAPPA_CHECKPOINT_URI",
    help="Where Flink keeps checkpoints: a file:// folder or s3://bucket/prefix "
    "[env KAPPA_CHECKPOINT_URI; default: as last started, else <home>/flink/checkpoints].",
)
@click.option(
    "--savepoint-uri",
    envvar="KAPPA_SAVEPOINT_URI",
    help="Where Flink keeps savepoints [env KAPPA_SAVEPOINT_URI; default: as last started, "
    "else <home>/flink/savepoints].",
)
@click.option(
    "--s3-endpoint",
    envvar="KAPPA_S3_ENDPOINT",
    help="URL of an S3-compatible store for s3:// URIs (path-style); credentials from "
    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [env KAPPA_S3_ENDPOINT].",
)
@click.option(
    "--ha/--no-ha",
    default=None,
    help="High availability: a ZooKeeper beside the JobManager, so that a JobManager that "
    "died recovers its jobs itself when started again [default: as last started, else off].",
)
@click.pass_obj
def up(config: StackConfig, /, as_json: bool, brokers: int | None, ha: bool | None, **given: Any) -> None:
    """Start the services that are not running (idempotent)."""
    from dataclasses import replace

    from kappa_orch.stack import manager

    # --taskmanagers and the storage options are named as the config's fields; unset: as before
    kept = {key: value or getattr(config, key) for key, value in given.items()}
    ha = config.ha if ha is None else ha
    _refuse_ha_change(config, ha)
    config = replace(config, kafka_brokers=brokers or config.kafka_brokers, ha=ha, **kept)
    statuses = manager.up(config, report=lambda msg: click.echo(msg, err=True))
    topology: dict[str, Any] = {"kafka_brokers": config.kafka_brokers, "taskmanagers": config.taskmanagers}
    topology.update({"ha": True} if config.ha else {})
    topology.update({key: getattr(config, key) for key in STORAGE if getattr(config, key)})
    (config.home / TOPOLOGY).write_text(json.dumps(topology) + "\n")
    _print_status(statuses, as_json)


def _refuse_ha_change(config: StackConfig, ha: bool) -> None:
    """HA is set when the JobManager starts: turning it on or off needs the cluster down."""
    from kappa_orch.errors import StackError
    from kappa_orch.stack.flink import FlinkService

    if ha != config.ha and "flink-jobmanager" in FlinkService(config).live_pids():
        now, asked = ("off", "--ha") if ha else ("on", "--no-ha")
        raise StackError(
            f"the Flink cluster runs with HA {now}; HA is set when the JobManager starts",
            f"run `kappa-orch stack down`, then `kappa-orch stack up {asked}` (running jobs "
            "resume from their checkpoints through `kappa-orch repair`)",
        )


@stack.command()
@click.pass_obj
def down(config: StackConfig) -> None:
    """Stop exactly what `stack up` started (by its pid files)."""
    from kappa_orch.stack import manager

    manager.down(config, report=click.echo)


@stack.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_obj
def status(config: StackConfig, as_json: bool) -> None:
    """Health, address and version of each service; exit 1 unless all run."""
    from kappa_orch.stack import manager

    statuses = manager.status(config)
    _print_status(statuses, as_json)
    if any(s.state != "running" for s in statuses):
        sys.exit(1)


@stack.command()
@click.pass_obj
def jars(config: StackConfig) -> None:
    """Resolve the Kafka broker and Flink connector jars from Maven Central."""
    from kappa_orch.stack.jars import resolve_all

    for name, folder in resolve_all(config.jars_dir).items():
        click.echo(f"{name}: {folder}")


@stack.command()
@click.pass_obj
def env(config: StackConfig) -> None:
    """Print the KAPPA_* variables that point kappa_orch (the CLI, the resources, the main
    job) at this stack, for `eval`: its services, its roles and its folder."""
    import shlex

    from kappa_orch.config import VARIABLES

    platform = config.platform()
    shown = ["kafka_bootstrap", "flink_rest_url", "sql_gateway_url", "flink_tls_ca", "flink_tls_cert"]
    shown += ["warehouse_url"]
    shown += ["warehouse_reader_url", "warehouse_sink_url", "home"]
    values = platform.model_dump()
    for field in shown:
        click.echo(f"export {VARIABLES[field]}={shlex.quote(str(values[field]))}")
