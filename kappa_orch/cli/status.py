"""`kappa-orch status [<pipeline>] [--json] [--watch]`."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import click

from kappa_orch.cli import main
from kappa_orch.cli.options import load_specs, pick, platform_of, platform_options, services_of
from kappa_orch.errors import KappaError


def _statuses(pipeline: str | None, options: dict[str, Any]) -> list[Any]:
    from kappa_orch.lifecycle.status import pipeline_status

    platform = platform_of(options)
    pipelines = load_specs(platform.specs)
    if pipeline is not None:
        pipelines = [pick(pipelines, pipeline, platform.specs)]
    services = services_of(platform)
    try:
        return pipeline_status(pipelines, services)
    finally:
        services.warehouse.dispose()


def _print(statuses: list[Any], before: list[Any] | None = None, elapsed_s: float | None = None) -> None:
    from kappa_orch.cli.status_view import render

    for text, colour in render(statuses, datetime.now(UTC), before, elapsed_s):
        click.secho(text, fg=colour)


def _watch(pipeline: str | None, interval: float, options: dict[str, Any]) -> None:
    """Print the status every `interval` seconds until Ctrl-C; a service that does not
    answer is reported and asked again on the next round."""
    terminal = sys.stdout.isatty()
    before: tuple[list[Any], float] | None = None
    try:
        while True:
            stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            if terminal:
                click.clear()
            click.secho(f"kappa-orch status at {stamp} (every {interval:g}s; Ctrl-C stops)", bold=True)
            try:
                statuses, at = _statuses(pipeline, options), time.monotonic()
                _print(statuses, *((before[0], at - before[1]) if before else ([], 0.0)))
                before = (statuses, at)
            except KappaError as exc:
                click.secho(f"{exc.problem}" + (f"\nfix: {exc.fix}" if exc.fix else ""), fg="red")
            if not terminal:
                click.echo("", nl=True)
                sys.stdout.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        return


@main.command(name="status")
@click.argument("pipeline", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option("--watch", is_flag=True, help="Print it again every --interval seconds, until Ctrl-C.")
@click.option(
    "--interval", type=click.FloatRange(min=0.5), default=5.0, show_default=True, help="With --watch."
)
@platform_options
def status_command(pipeline: str | None, as_json: bool, watch: bool, interval: float, **options: Any) -> None:
    """Every pipeline's health as a table (live version, lag, checkpoint age, late
    records, dead letters, last swap), then each one's versions, warnings and failed
    scheduled checks."""
    if watch and as_json:
        raise click.UsageError("--watch prints the table; use --json without it")
    if watch:
        _watch(pipeline, interval, options)
        return
    statuses = _statuses(pipeline, options)
    if as_json:
        click.echo(json.dumps([asdict(s) for s in statuses], indent=2))
        return
    _print(statuses)
