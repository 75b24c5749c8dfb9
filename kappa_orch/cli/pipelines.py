"""Pipeline commands: validate, deploy, status, plan (operating ones are in cli.operate)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from kappa_orch.cli import main
from kappa_orch.cli.options import (
    load_specs,
    pick,
    platform_of,
    platform_options,
    resources_of,
    services_of,
    specs_option,
)
from kappa_orch.config import PlatformConfig
from kappa_orch.errors import GateFailed


@main.command()
@specs_option
@click.option(
    "--flink/--no-flink",
    default=True,
    show_default=True,
    help="Also plan every SELECT with Flink's own planner (a local JVM, no cluster).",
)
def validate(specs: Path | None, flink: bool) -> None:
    """Check every pipeline spec, its SQL and its checks without any server; exit 1 on a problem.

    With --flink (the default) each SELECT is planned by Flink's parser and planner in
    one local JVM, in streaming mode and, for pipelines with `batch:`, in batch mode."""
    from kappa_orch.spec.checks import check_problems
    from kappa_orch.spec.load import SpecErrors

    pipelines = load_specs(specs or PlatformConfig().specs)
    problems = check_problems(pipelines)
    if flink:
        from kappa_orch.engine.flink.planner import plan_pipelines

        problems += plan_pipelines(pipelines)
    if problems:
        raise SpecErrors(problems)
    for pipeline in pipelines:
        topics = ", ".join(sorted({s.topic for s in pipeline.spec.sources}))
        click.echo(
            f"{pipeline.name:<24} {pipeline.fingerprint}  {pipeline.spec.target.alias:<32} <- {topics}"
        )
    planned = " and planned by Flink" if flink else ""
    click.echo(f"{len(pipelines)} pipeline spec(s) valid{planned}")
    from datetime import UTC, datetime

    from kappa_orch.lifecycle.topics import declared_retention_warnings

    for warning in declared_retention_warnings(pipelines, datetime.now(UTC).date()):
        click.secho(f"WARNING: {warning}", fg="yellow")


@main.command(name="deploy")
@click.argument("pipeline", required=False)
@click.option("--all", "deploy_all", is_flag=True, help="Deploy every pipeline.")
@platform_options
def deploy_command(pipeline: str | None, deploy_all: bool, **options: Any) -> None:
    """Deploy a pipeline's current fingerprint (a new version unless it already runs).

    A pipeline's first version is also awaited and gated: its alias appears only once
    the version has caught up and passed its checks. Later fingerprints are deployed as
    candidates; `reprocess` checks them and swaps the alias."""
    import uuid

    from kappa_orch.lifecycle.swap import SwapRequest
    from kappa_orch.registry.claims import owner_id

    platform = platform_of(options)
    if bool(pipeline) == deploy_all:
        raise click.UsageError("name one pipeline or pass --all")
    pipelines = load_specs(platform.specs)
    chosen = pipelines if deploy_all else [pick(pipelines, str(pipeline), platform.specs)]
    services = services_of(platform)
    live = _live_versions(services.warehouse)
    run = f"cli-deploy-{uuid.uuid4().hex[:8]}"  # recorded with a first deploy's swap
    owner = owner_id(run)
    for item in chosen:
        if item.name in live:
            result = _deploy_next(item, services, owner=owner)
        else:
            result = _deploy_first(
                item, services, SwapRequest(run_id=run, git_commit=platform.commit(), owner=owner)
            )
        click.echo(
            f"{item.name}: v{result.plan.version} ({result.plan.action}) job {result.flink_job_id} "
            f"-> {item.spec.target.schema_name}.{result.plan.physical_table}"
        )
    services.warehouse.dispose()


def _deploy_next(item: Any, services: Any, *, owner: str) -> Any:
    """A later fingerprint, as a candidate; under the pipeline's claim, like a reprocess: a
    deploy left unfinished by a killed run is taken over at once, and two deploys never race."""
    from kappa_orch.lifecycle.deploy import deploy
    from kappa_orch.registry import claims

    warehouse = services.warehouse
    claims.acquire(warehouse, item.name, claims.Claimant(owner), fingerprint=item.fingerprint, log=click.echo)
    try:
        return deploy(item, services, holds_claim=True)
    finally:
        claims.release(warehouse, pipeline=item.name, owner=owner)


def _deploy_first(item: Any, services: Any, swap_request: Any) -> Any:
    """A pipeline's first version: deployed, awaited and gated; its alias appears only then
    (recorded as the first deploy, with `swap_request`'s run and the deployment's commit)."""
    from kappa_orch.lifecycle.reprocess import prepare_candidate
    from kappa_orch.lifecycle.swap import swap
    from kappa_orch.registry.claims import Claimant

    report = prepare_candidate(item, services, Claimant(swap_request.owner))
    if not report.passed:
        failed = "; ".join(f"{o.name}: {o.summary}" for o in report.outcomes if not o.passed)
        raise GateFailed(
            f"the first version of {item.name!r} failed its checks, so its alias was not created: {failed}",
            "fix the spec (or the data) and deploy again; the version is kept for inspection",
        )
    swap(item, services, swap_request)
    return report.deployed


def _live_versions(warehouse: Any) -> dict[str, int]:
    from kappa_orch.registry import store as registry

    with registry.session(warehouse) as conn:
        return registry.live_versions(conn)


@main.command(name="history")
@click.argument("pipeline")
@click.option("--json", "as_json", is_flag=True, help="Print the swaps as JSON.")
@platform_options
def history_command(pipeline: str, as_json: bool, **options: Any) -> None:
    """Every swap of a pipeline's alias, oldest first: when, from and to which version,
    why, who, the deployment's git commit and the run (a Dagster run id, or the CLI command)."""
    from kappa_orch.dagster.alias_state import run_url
    from kappa_orch.registry import store as registry

    platform = platform_of(options)
    chosen = pick(load_specs(platform.specs), pipeline, platform.specs)
    _, _, warehouse = resources_of(platform)
    with registry.session(warehouse) as conn:
        swaps = registry.swap_history(conn, chosen.name)
        rows = registry.pipeline_versions(conn, chosen.name)
    for swap in swaps:
        swap["run_url"] = run_url(platform.dagster_url, swap["run_id"])
    warehouse.dispose()
    if as_json:
        click.echo(json.dumps(swaps, indent=2, default=str))
        return
    click.echo(f"{'swapped at (UTC)':<20} {'from':>5} {'to':>4}  {'reason':<14} {'by':<12} {'git':<8} run")
    for s in swaps:
        at = s["swapped_at"].strftime("%Y-%m-%d %H:%M:%S") if s.get("swapped_at") else "?"
        source = f"v{s['from_version']}" if s["from_version"] is not None else "-"
        run = s["run_url"] or s["run_id"] or "?"
        click.echo(
            f"{at:<20} {source:>5} {'v' + str(s['to_version']):>4}  {s['reason']:<14} "
            f"{s['swapped_by'] or '?':<12} {(s['git_commit'] or '?')[:8]:<8} {run}"
        )
    _print_failed_gates(rows)


def _print_failed_gates(rows: list[Any]) -> None:
    """The candidates that failed their gate: which checks, and the rows they named."""
    from kappa_orch.lifecycle.status import gate_rows
    from kappa_orch.registry.states import FAILED

    failed = [r for r in rows if r.state == FAILED and r.check_results]
    for row in failed:
        checks = [name for name, result in (row.check_results or {}).items() if not result.get("passed")]
        click.secho(f"v{row.version} failed its gate: {', '.join(checks)}", fg="red")
        for line in gate_rows(row):
            click.echo(f"  {line[:200]}")


@main.command(name="retire")
@click.argument("pipeline")
@click.argument("version", type=int)
@platform_options
def retire_command(pipeline: str, version: int, **options: Any) -> None:
    """Stop a replaced version's job and drop its table now (before its grace period ends),
    e.g. to free a task slot. The live version cannot be retired."""
    import uuid

    from kappa_orch.lifecycle.swap import retire
    from kappa_orch.registry.claims import owner_id

    platform = platform_of(options)
    chosen = pick(load_specs(platform.specs), pipeline, platform.specs)
    services = services_of(platform)
    owner = owner_id(f"cli-retire-{uuid.uuid4().hex[:8]}")
    retire(chosen, version, services, owner=owner)
    services.warehouse.dispose()
