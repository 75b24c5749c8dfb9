"""What every pipeline command shares: the platform flags (read through PlatformConfig),
loading the specs, picking one pipeline."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from kappa_orch.cli import F
from kappa_orch.config import VARIABLES, PlatformConfig
from kappa_orch.errors import OperationRefused, SpecError


def _option(field: str, flag: str, help: str) -> Callable[[F], F]:
    """A platform flag: its variable and its default are the ones PlatformConfig knows."""
    default = PlatformConfig.model_fields[field].default
    shown = f"; default {default}" if default is not None else ""
    return click.option(
        flag, field, envvar=VARIABLES[field], default=None, help=f"{help} [env {VARIABLES[field]}{shown}]."
    )


specs_option = click.option(
    "--specs",
    envvar=VARIABLES["specs"],
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Folder of pipeline specs [env {VARIABLES['specs']}; default assets].",
)


def platform_of(options: dict[str, Any]) -> PlatformConfig:
    """The platform this command works on (the command is the parent run of what it
    tells OpenLineage)."""
    from kappa_orch.lineage import emit as lineage_emit

    platform = PlatformConfig.from_env(os.environ, flags=options)
    context = click.get_current_context(silent=True)
    lineage_emit.cli_command(context.command_path.replace(" ", ".") if context else "kappa-orch")
    return platform


def resources_of(platform: PlatformConfig) -> tuple[Any, Any, Any]:
    found = platform.resources()
    return found["kafka"], found["flink"], found["warehouse"]


def services_of(platform: PlatformConfig) -> Any:
    """The platform's services for a lifecycle step, telling its progress on stdout and
    what it does to the deployment's OpenLineage transport (its problems as warnings)."""
    from kappa_orch.lifecycle.services import Services

    found = platform.resources()

    def warn(text: str) -> None:
        click.secho(f"WARNING: {text}", fg="yellow", err=True)

    lineage = found["openlineage"].lineage(warn=warn)
    return Services(
        found["kafka"],
        found["flink"],
        found["warehouse"],
        log=click.echo,
        lineage=lineage,
        alerts=found["alerts"],
    )


def background_environment(options: dict[str, Any]) -> dict[str, str]:
    """The options of a foreground command as the KAPPA_* variables its background run
    reads: every option kept (an unset one stays unset, never the text "None"), and no
    value, such as the warehouse URL with its password, on a command line `ps` shows."""
    return {VARIABLES[key]: str(value) for key, value in options.items() if value is not None}


def platform_options(func: F) -> F:
    options = [
        specs_option,
        _option("kafka_bootstrap", "--kafka-bootstrap", "Kafka bootstrap servers"),
        _option("flink_rest_url", "--flink-rest-url", "Flink REST endpoint"),
        _option("sql_gateway_url", "--sql-gateway-url", "Flink SQL Gateway endpoint"),
        _option(
            "warehouse_url", "--warehouse-url", "SQLAlchemy URL of the warehouse, as the orchestrator's role"
        ),
        _option(
            "warehouse_reader_url",
            "--warehouse-reader-url",
            "URL of a read-only role for the gate's checks (the local stack's kappa_reader with the "
            "default warehouse)",
        ),
        _option(
            "warehouse_sink_url",
            "--warehouse-sink-url",
            "URL of the role Flink's JDBC sinks write with (the local stack's kappa_sink with the "
            "default warehouse)",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def load_specs(specs: Path) -> list[Any]:
    from kappa_orch.spec.load import load_pipelines

    if not specs.is_dir():
        raise SpecError(f"the specs folder {specs} does not exist", "pass --specs or set KAPPA_SPECS")
    return load_pipelines(specs)


def pick(pipelines: list[Any], name: str, specs: Path) -> Any:
    chosen = next((p for p in pipelines if p.name == name), None)
    if chosen is None:
        names = ", ".join(p.name for p in pipelines)
        raise OperationRefused(f"no pipeline named {name!r} in {specs}", f"choose one of: {names}")
    return chosen
