"""Pipeline commands: validate, deploy, status, plan (operating ones are in cli.operate)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
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
from kappa_orch.errors import GateFailed, KappaError


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


@main.command(name="plan")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option(
    "--apply", is_flag=True, help="Then run it: a reprocess of every pipeline it deploys or reprocesses."
)
@platform_options
def plan_command(as_json: bool, apply: bool, **options: Any) -> None:
    """Dry run: per pipeline the live version, the spec's fingerprint and the action
    (none, deploy, reprocess, repair, blocked), the SQL and spec diff from the live
    version, the records a replay reads and its estimated time, the column changes,
    versions to repair (their job is gone) and versions due for retirement. With
    --apply, the deploys and reprocesses it lists are run (as `reprocess --wait`)."""
    from kappa_orch.lifecycle.topics import retention_verdict

    platform = platform_of(options)
    pipelines = load_specs(platform.specs)
    plans, reports = _plans_and_reports(pipelines, platform)
    warnings, topics = _topic_warnings(pipelines, platform)
    for warning in warnings:
        click.secho(f"WARNING: {warning}", fg="yellow", err=as_json)
    retention = {p.pipeline: retention_verdict(p.pipeline, topics) for p in plans}
    if as_json:
        plan = [
            {**asdict(p), "replay": asdict(reports[p.pipeline]), "retention": retention[p.pipeline]}
            for p in plans
        ]
        click.echo(json.dumps(plan, indent=2))
    else:
        for p in plans:
            _print_plan(p, reports[p.pipeline], retention[p.pipeline])
    if apply:
        _apply(plans, platform)


def _plans_and_reports(pipelines: list[Any], platform: PlatformConfig) -> tuple[list[Any], dict[str, Any]]:
    """The plans (jobs judged when Flink answers) and each pipeline's replay report."""
    from kappa_orch.errors import ServiceUnavailable
    from kappa_orch.plan.decide import current_plan
    from kappa_orch.plan.replay_checks import deleted_since
    from kappa_orch.plan.report import replay_report
    from kappa_orch.registry import store as registry

    kafka, flink, warehouse = resources_of(platform)
    try:
        ids = kafka.topic_ids(s.topic for p in pipelines for s in p.spec.sources)
    except ServiceUnavailable as exc:
        click.secho(
            f"WARNING: topics not checked ({exc.problem}); the plan cannot see replaced logs", fg="yellow"
        )
        ids = None
    try:
        plans = current_plan(pipelines, warehouse, flink, ids)
    except ServiceUnavailable as exc:
        click.secho(f"WARNING: jobs not checked ({exc.problem}); the plan cannot see lost jobs", fg="yellow")
        plans = current_plan(pipelines, warehouse, topic_ids=ids)
    with registry.session(warehouse) as conn:
        rows = {(r.pipeline, r.version): r for r in registry.all_versions(conn)}
        counted = {
            p.pipeline: registry.input_counts_of(conn, p.pipeline, p.live_version)
            for p in plans
            if p.live_version
        }
    warehouse.dispose()
    reports = {}
    for pipeline, p in zip(pipelines, plans, strict=True):
        live_row = rows.get((p.pipeline, p.live_version or 0))
        gaps = deleted_since(counted.get(p.pipeline, []), _log_starts(kafka, pipeline))
        held = _records_held(kafka, pipeline)
        report = replay_report(pipeline, live_row, held, gaps)
        if p.action == "reprocess" and live_row is not None:
            report = replace(report, change=_change(pipeline, live_row, platform, held))
        reports[p.pipeline] = report
    return plans, reports


def _change(pipeline: Any, live_row: Any, platform: PlatformConfig, held: int | None) -> Any:
    """The class of the spec's change against the live version (lifecycle.change), or
    None when Flink or the warehouse did not answer (a warning says so)."""
    from kappa_orch.lifecycle.change import change_of

    services = services_of(platform).telling(lambda _: None)
    try:
        return change_of(pipeline, live_row, services, held)
    except KappaError as exc:
        click.secho(f"WARNING: {pipeline.name}: the change was not classified ({exc.problem})", fg="yellow")
        return None
    finally:
        services.warehouse.dispose()


def _log_starts(kafka: Any, pipeline: Any) -> dict[str, dict[int, int]]:
    """Each source topic's first held offset per partition (a topic not there: left out)."""
    starts = {}
    for source in pipeline.spec.sources:
        try:
            starts[source.topic] = {p: low for p, (low, _) in kafka.watermarks(source.topic).items()}
        except KappaError:
            continue
    return starts


def _records_held(kafka: Any, pipeline: Any) -> int | None:
    """What the pipeline's topics hold now: what a replay from the earliest offsets reads."""
    try:
        return int(
            sum(high - low for s in pipeline.spec.sources for low, high in kafka.watermarks(s.topic).values())
        )
    except KappaError:
        return None  # a topic missing or Kafka down: `topics` and the warnings say which


def _print_plan(p: Any, report: Any, retention: dict[str, Any]) -> None:
    live_text = f"v{p.live_version} ({p.live_fingerprint})" if p.live_version else "none"
    retire = f"; retire {', '.join(f'v{v}' for v in p.retire)}" if p.retire else ""
    repair = f"; repair {', '.join(f'v{v}' for v in p.repair)}" if p.repair else ""
    abandon = f"; abandon {', '.join(f'v{v}' for v in p.abandon)}" if p.abandon else ""
    click.echo(
        f"{p.pipeline:<24} live {live_text:<24} spec {p.desired_fingerprint}  {p.action}: {p.detail}"
        f"{repair}{abandon}{retire}"
    )
    if p.column_changes:
        click.echo(f"{'':<24} columns: {', '.join(p.column_changes)}")
    if p.action not in ("deploy", "reprocess"):
        return
    if report.change is not None:
        _print_change(report.change)
    for line in [*report.sql_diff, *report.spec_diff]:
        color = "green" if line.startswith("+") else "red" if line.startswith("-") else None
        click.secho(f"{'':<24} {line}", fg=color)
    if report.records_to_read is not None:
        estimate = ""
        if report.estimate_s is not None:
            speed = f"{report.events_per_s:,.0f} events/s"
            estimate = f", about {report.estimate_s:,.0f}s at {speed} (the live version's catch-up)"
        click.echo(f"{'':<24} replay: {report.records_to_read:,} records{estimate}")
    for gap in report.history_gaps:
        click.secho(
            f"{'':<24} history: {gap['missing']:,} record(s) live v{p.live_version} read are gone from "
            f"{gap['topic']}[{gap['partition']}] (offsets {gap['live_from']}..{gap['log_from'] - 1}): the "
            "replay fails complete_history unless the history is restored or the gap accepted",
            fg="red",
        )
    verdict = retention["verdict"]
    colour = "green" if verdict == "ok" else "red" if verdict == "too short" else "yellow"
    click.secho(f"{'':<24} retention: {verdict} (the history a replay reads)", fg=colour)


def _print_change(change: Any) -> None:
    """The change's class, what a reprocess does with it, why, and its cost."""
    applied = {
        "nothing": "no new version, no job",
        "savepoint": "a start from the live version's savepoint, its rows copied, verified at the gate",
        "replay": "a full replay",
    }[change.applied]
    colour = "green" if change.cheap else "yellow"
    click.secho(f"{'':<24} change: {change.kind} (a reprocess makes it with {applied})", fg=colour)
    for reason in change.reasons:
        click.echo(f"{'':<24}   - {reason}")
    if change.cheap and change.applied == "replay":
        click.echo(
            f"{'':<24}   (a column computed anew from the live rows: not built yet, the candidate replays)"
        )
    if change.rows_to_derive:
        estimate = f", about {change.estimate_s:,.0f}s" if change.estimate_s is not None else ""
        click.echo(f"{'':<24}   cheap path: {change.rows_to_derive:,} live rows to derive{estimate}")


def _apply(plans: list[Any], platform: PlatformConfig) -> None:
    """Run each planned deploy or reprocess, one pipeline after the other; exit 1 on a failure."""
    from kappa_orch.cli.operate import reprocess_here
    from kappa_orch.lifecycle.reprocess import Acceptance

    todo = [p.pipeline for p in plans if p.action in ("deploy", "reprocess")]
    if not todo:
        click.echo("nothing to apply")
        return
    for name in todo:
        click.echo(f"applying: reprocess of {name}")
        alias = reprocess_here(name, Acceptance(), platform)
        click.echo(f"{name}: {alias} serves the spec's fingerprint")


def _topic_warnings(pipelines: list[Any], platform: PlatformConfig) -> tuple[list[str], Any]:
    """The source topics' problems (missing, too few partitions, too short a retention),
    and the topic reports (None when the broker did not answer)."""
    from datetime import UTC, datetime

    from kappa_orch.errors import ServiceUnavailable
    from kappa_orch.lifecycle.topics import check_topics, topic_needs

    needs, conflicts = topic_needs(pipelines, datetime.now(UTC).date())
    try:
        reports = check_topics(needs, platform.resources()["kafka"])
    except ServiceUnavailable as exc:
        return [*conflicts, f"source topics not checked ({exc.problem})"], None
    return conflicts + [p for r in reports for p in r.problems], reports


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
