"""`kappa-orch plan`: what each pipeline needs, the class of each spec's change against its
live version (with its reasons, cost and plan id), and, with --apply, running it (after
approving a change that waits, with --approve)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
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
)
from kappa_orch.config import PlatformConfig
from kappa_orch.errors import KappaError, OperationRefused


@main.command(name="plan")
@click.argument("names", nargs=-1, metavar="[PIPELINE]...")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option(
    "--apply", is_flag=True, help="Then run it: a reprocess of every pipeline it deploys or reprocesses."
)
@click.option(
    "--approve",
    metavar="PLAN_ID",
    help="With --apply: first approve the change that waits under this plan id (exactly that change; "
    "recorded with who approved it).",
)
@platform_options
def plan_command(
    names: tuple[str, ...], as_json: bool, apply: bool, approve: str | None, **options: Any
) -> None:
    """Dry run (of the named pipelines; default: every one): per pipeline the live
    version, the spec's fingerprint and the action (none, deploy, reprocess, repair,
    blocked), the SQL and spec diff from the live version, the records a replay reads
    and its estimated time, the column changes, versions to repair (their job is gone)
    and versions due for retirement. With --apply, the deploys and reprocesses it lists
    are run (as `reprocess --wait`)."""
    from kappa_orch.lifecycle.topics import retention_verdict

    platform = platform_of(options)
    pipelines = load_specs(platform.specs)
    if names:
        pipelines = [pick(pipelines, name, platform.specs) for name in dict.fromkeys(names)]
    if approve:
        _approve(approve, apply, platform)
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


def _approve(plan_id: str, apply: bool, platform: PlatformConfig) -> None:
    """Record the approval of the change waiting under `plan_id` (refused without --apply,
    or when no change waits under it)."""
    import getpass

    from kappa_orch.registry import approvals
    from kappa_orch.registry import store as registry

    if not apply:
        raise OperationRefused(
            "--approve approves a change to apply it now", f"run: kappa-orch plan --apply --approve {plan_id}"
        )
    warehouse = platform.resources()["warehouse"]
    with registry.session(warehouse) as conn:
        found = approvals.approve(conn, plan_id, getpass.getuser())
    warehouse.dispose()
    if found is None:
        raise OperationRefused(
            f"no change waits for approval under plan id {plan_id!r}",
            "`kappa-orch plan` shows the changes that wait and their plan ids",
        )
    click.echo(f"approved plan {plan_id}: {found.pipeline} ({found.kind}) by {found.approved_by}")


def _plans_and_reports(pipelines: list[Any], platform: PlatformConfig) -> tuple[list[Any], dict[str, Any]]:
    """The plans (jobs judged when Flink answers) and each pipeline's replay report."""
    from kappa_orch.errors import ServiceUnavailable
    from kappa_orch.lifecycle.change import records_held
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
        held = records_held(kafka, pipeline)
        report = replay_report(pipeline, live_row, held, gaps)
        changed = p.live_fingerprint != p.desired_fingerprint or p.action == "reconfigure"
        if live_row is not None and changed:
            change, approval = _change(pipeline, live_row, platform, held)
            report = replace(report, change=change, approval=approval)
        reports[p.pipeline] = report
    return plans, reports


def _change(
    pipeline: Any, live_row: Any, platform: PlatformConfig, held: int | None
) -> tuple[Any, list[str]]:
    """The class of the spec's change against the live version (lifecycle.change) and why
    it waits for approval, or None when Flink or the warehouse did not answer (a warning
    says so)."""
    from kappa_orch.lifecycle.change import change_of
    from kappa_orch.plan.change import needs_approval

    services = services_of(platform).telling(lambda _: None)
    try:
        change = change_of(pipeline, live_row, services, held)
        approval = pipeline.spec.approval
        return change, needs_approval(change, approval.above_events, approval.dropping_columns)
    except KappaError as exc:
        click.secho(f"WARNING: {pipeline.name}: the change was not classified ({exc.problem})", fg="yellow")
        return None, []
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
    if report.change is not None:
        _print_change(report.change, report.approval)
    if p.action not in ("deploy", "reprocess"):
        return
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


def _print_change(change: Any, approval: list[str]) -> None:
    """The change's class, what a reprocess does with it, why, its cost, and whether it
    waits for approval (`approval`: why)."""
    applied = {
        "nothing": "no new version, no job",
        "restart": "a restart of the live job from a savepoint with its new settings (no new version)",
        "savepoint": "a start from the live version's savepoint, its rows derived, verified at the gate",
        "replay": "a full replay",
    }[change.applied]
    colour = "green" if change.cheap else "yellow"
    click.secho(f"{'':<24} change: {change.kind} (a reprocess makes it with {applied})", fg=colour)
    for reason in change.reasons:
        click.echo(f"{'':<24}   - {reason}")
    if change.applied == "savepoint" and (change.expressions or change.conditions):
        computed = ", ".join(sorted(change.expressions)) or "none"
        click.echo(
            f"{'':<24}   derived by a bounded Flink job: computed columns {computed}; "
            f"{len(change.conditions)} filter(s) on the live rows"
        )
    if change.rows_to_derive:
        estimate = f", about {change.estimate_s:,.0f}s" if change.estimate_s is not None else ""
        click.echo(f"{'':<24}   cheap path: {change.rows_to_derive:,} live rows to derive{estimate}")
    if change.plan_id:
        click.echo(f"{'':<24}   plan id: {change.plan_id}")
    if approval and change.plan_id:
        click.secho(
            f"{'':<24}   waits for approval: {'; '.join(approval)}; approve exactly this change with "
            f"`kappa-orch plan --apply --approve {change.plan_id}`",
            fg="yellow",
        )


def _apply(plans: list[Any], platform: PlatformConfig) -> None:
    """Run each planned deploy or reprocess, one pipeline after the other; exit 1 on a failure."""
    from kappa_orch.cli.operate import reprocess_here
    from kappa_orch.lifecycle.reprocess import Acceptance

    todo = [p.pipeline for p in plans if p.requests_run]
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
