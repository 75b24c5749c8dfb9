"""Pipeline commands: validate, deploy, status, plan, reprocess, backfill, rollback."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from kappa_orch.cli import F, fail, main
from kappa_orch.config import VARIABLES, PlatformConfig
from kappa_orch.errors import GateFailed, KappaError, OperationRefused, SpecError


def _option(field: str, flag: str, help: str) -> Callable[[F], F]:
    """A platform flag: its variable and its default are the ones PlatformConfig knows."""
    default = PlatformConfig.model_fields[field].default
    shown = f"; default {default}" if default is not None else ""
    return click.option(
        flag, field, envvar=VARIABLES[field], default=None, help=f"{help} [env {VARIABLES[field]}{shown}]."
    )


_specs_option = click.option(
    "--specs",
    envvar=VARIABLES["specs"],
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Folder of pipeline specs [env {VARIABLES['specs']}; default assets].",
)


def _platform(options: dict[str, Any]) -> PlatformConfig:
    return PlatformConfig.from_env(os.environ, flags=options)


def _resources(platform: PlatformConfig) -> tuple[Any, Any, Any]:
    found = platform.resources()
    return found["kafka"], found["flink"], found["warehouse"]


def background_environment(options: dict[str, Any]) -> dict[str, str]:
    """The options of a foreground command as the KAPPA_* variables its background run
    reads: every option kept (an unset one stays unset, never the text "None"), and no
    value, such as the warehouse URL with its password, on a command line `ps` shows."""
    return {VARIABLES[key]: str(value) for key, value in options.items() if value is not None}


def _platform_options(func: F) -> F:
    options = [
        _specs_option,
        _option("kafka_bootstrap", "--kafka-bootstrap", "Kafka bootstrap servers"),
        _option("flink_rest_url", "--flink-rest-url", "Flink REST endpoint"),
        _option("sql_gateway_url", "--sql-gateway-url", "Flink SQL Gateway endpoint"),
        _option(
            "flink_checkpoint_dir",
            "--flink-checkpoint-dir",
            "The Flink cluster's checkpoint folder when readable here (file://...); default: the "
            "local stack's, if present",
        ),
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


def _load(specs: Path) -> list[Any]:
    from kappa_orch.spec.load import load_pipelines

    if not specs.is_dir():
        raise SpecError(f"the specs folder {specs} does not exist", "pass --specs or set KAPPA_SPECS")
    return load_pipelines(specs)


def _pick(pipelines: list[Any], name: str, specs: Path) -> Any:
    chosen = next((p for p in pipelines if p.name == name), None)
    if chosen is None:
        names = ", ".join(p.name for p in pipelines)
        raise OperationRefused(f"no pipeline named {name!r} in {specs}", f"choose one of: {names}")
    return chosen


@main.command()
@_specs_option
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
    from kappa_orch.spec.fingerprint import fingerprint
    from kappa_orch.spec.load import SpecErrors

    try:
        pipelines = _load(specs or PlatformConfig().specs)
        problems = check_problems(pipelines)
        if flink:
            from kappa_orch.spec.planner import plan_pipelines

            problems += plan_pipelines(pipelines)
        if problems:
            raise SpecErrors(problems)
    except KappaError as exc:
        fail(exc)
        return
    for pipeline in pipelines:
        topics = ", ".join(sorted({s.topic for s in pipeline.spec.sources}))
        click.echo(
            f"{pipeline.name:<24} {fingerprint(pipeline)}  {pipeline.spec.target.alias:<32} <- {topics}"
        )
    planned = " and planned by Flink" if flink else ""
    click.echo(f"{len(pipelines)} pipeline spec(s) valid{planned}")
    from datetime import UTC, datetime

    from kappa_orch.topics import declared_retention_warnings

    for warning in declared_retention_warnings(pipelines, datetime.now(UTC).date()):
        click.secho(f"WARNING: {warning}", fg="yellow")


@main.command(name="deploy")
@click.argument("pipeline", required=False)
@click.option("--all", "deploy_all", is_flag=True, help="Deploy every pipeline.")
@_platform_options
def deploy_command(pipeline: str | None, deploy_all: bool, **options: Any) -> None:
    """Deploy a pipeline's current fingerprint (a new version unless it already runs).

    A pipeline's first version is also awaited and gated: its alias appears only once
    the version has caught up and passed its checks. Later fingerprints are deployed as
    candidates; `reprocess` checks them and swaps the alias."""
    import uuid

    from kappa_orch import claims
    from kappa_orch.claims import owner_id
    from kappa_orch.deploy import deploy
    from kappa_orch.reprocess import prepare_candidate
    from kappa_orch.spec.fingerprint import fingerprint
    from kappa_orch.swap import swap

    platform = _platform(options)
    if bool(pipeline) == deploy_all:
        raise click.UsageError("name one pipeline or pass --all")
    try:
        pipelines = _load(platform.specs)
        chosen = pipelines if deploy_all else [_pick(pipelines, str(pipeline), platform.specs)]
        kafka, flink, warehouse = _resources(platform)
        live = _live_versions(warehouse)
        owner = owner_id(f"cli-deploy-{uuid.uuid4().hex[:8]}")
        for item in chosen:
            if item.name in live:
                # under the pipeline's claim, like a reprocess: a deploy left unfinished by a
                # killed run is taken over at once, and two deploys never race
                claims.acquire(
                    warehouse, pipeline=item.name, owner=owner, fingerprint=fingerprint(item), log=click.echo
                )
                try:
                    result = deploy(
                        item, kafka=kafka, flink=flink, warehouse=warehouse, log=click.echo, holds_claim=True
                    )
                finally:
                    claims.release(warehouse, pipeline=item.name, owner=owner)
            else:
                report = prepare_candidate(
                    item,
                    kafka=kafka,
                    flink=flink,
                    warehouse=warehouse,
                    owner=owner,
                    log=click.echo,
                )
                if not report.passed:
                    failed = "; ".join(f"{o.name}: {o.summary}" for o in report.outcomes if not o.passed)
                    raise GateFailed(
                        f"the first version of {item.name!r} failed its checks, so its alias was not "
                        f"created: {failed}",
                        "fix the spec (or the data) and deploy again; the version is kept for inspection",
                    )
                swap(item, warehouse=warehouse, log=click.echo)
                result = report.deployed
            click.echo(
                f"{item.name}: v{result.plan.version} ({result.plan.action}) job {result.flink_job_id} "
                f"-> {item.spec.target.schema_name}.{result.plan.physical_table}"
            )
        warehouse.dispose()
    except KappaError as exc:
        fail(exc)


def _live_versions(warehouse: Any) -> dict[str, int]:
    from kappa_orch import registry

    with warehouse.registry() as conn:
        return registry.live_versions(conn)


@main.command(name="status")
@click.argument("pipeline", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@_platform_options
def status_command(pipeline: str | None, as_json: bool, **options: Any) -> None:
    """Live version, job state, lag and dead-letter counts of each pipeline."""
    from kappa_orch.status import pipeline_status

    platform = _platform(options)
    try:
        pipelines = _load(platform.specs)
        if pipeline is not None:
            pipelines = [_pick(pipelines, pipeline, platform.specs)]
        kafka, flink, warehouse = _resources(platform)
        statuses = pipeline_status(pipelines, kafka=kafka, flink=flink, warehouse=warehouse)
        warehouse.dispose()
    except KappaError as exc:
        fail(exc)
        return
    if as_json:
        click.echo(json.dumps([asdict(s) for s in statuses], indent=2))
        return
    for s in statuses:
        live = f"v{s.live_version}" if s.live_version else "none"
        if s.degraded:
            sync = "DEGRADED: its job is not running"
        elif s.in_sync:
            sync = "in sync"
        else:
            sync = f"spec fingerprint {s.desired_fingerprint} not live"
        click.secho(
            f"{s.pipeline}  alias {s.alias} -> {live}  ({sync})  dead letters -> {s.dead_letter_topic}",
            fg="red" if s.degraded else None,
        )
        for warning in s.warnings:
            click.secho(f"  WARNING: {warning}", fg="yellow")
        if s.column_changes:
            click.echo(f"  columns, spec against live: {', '.join(s.column_changes)}")
        for v in s.versions:
            extra = f" job {v.job_state}" if v.job_state else ""
            extra += f" lag {v.lag:,}" if v.lag is not None else ""
            extra += f" late {v.late_total:,}" if v.late_total is not None else ""
            extra += f" input {v.input:,} dead-lettered {v.dead_lettered:,}" if v.input else ""
            error = f"  error: {v.error.splitlines()[0][:120]}" if v.error else ""
            state = "degraded" if v.degraded else v.state
            click.echo(f"  v{v.version} {v.fingerprint} {state:<11} {v.physical_table}{extra}{error}")


@main.command(name="plan")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@_platform_options
def plan_command(as_json: bool, **options: Any) -> None:
    """Dry run: per pipeline the live version, the spec's fingerprint and the action
    (none, deploy, reprocess, repair, blocked), the column changes, versions to repair
    (their job is gone) and versions due for retirement."""
    from kappa_orch.errors import ServiceUnavailable
    from kappa_orch.plan import current_plan

    platform = _platform(options)
    try:
        pipelines = _load(platform.specs)
        _, flink, warehouse = _resources(platform)
        try:
            plans = current_plan(pipelines, warehouse, flink)
        except ServiceUnavailable as exc:
            click.secho(
                f"WARNING: jobs not checked ({exc.problem}); the plan cannot see lost jobs", fg="yellow"
            )
            plans = current_plan(pipelines, warehouse)
        warehouse.dispose()
        warnings = _topic_warnings(pipelines, platform)
    except KappaError as exc:
        fail(exc)
        return
    for warning in warnings:
        click.secho(f"WARNING: {warning}", fg="yellow", err=as_json)
    if as_json:
        click.echo(json.dumps([asdict(p) for p in plans], indent=2))
        return
    for p in plans:
        live_text = f"v{p.live_version} ({p.live_fingerprint})" if p.live_version else "none"
        retire = f"; retire {', '.join(f'v{v}' for v in p.retire)}" if p.retire else ""
        repair = f"; repair {', '.join(f'v{v}' for v in p.repair)}" if p.repair else ""
        abandon = f"; abandon {', '.join(f'v{v}' for v in p.abandon)}" if p.abandon else ""
        spec_fp = p.desired_fingerprint
        click.echo(
            f"{p.pipeline:<24} live {live_text:<24} spec {spec_fp}  {p.action}: {p.detail}"
            f"{repair}{abandon}{retire}"
        )
        if p.column_changes:
            click.echo(f"{'':<24} columns: {', '.join(p.column_changes)}")


def _topic_warnings(pipelines: list[Any], platform: PlatformConfig) -> list[str]:
    """The source topics' problems (missing, too few partitions, too short a retention)."""
    from datetime import UTC, datetime

    from kappa_orch.errors import ServiceUnavailable
    from kappa_orch.topics import check_topics, topic_needs

    needs, conflicts = topic_needs(pipelines, datetime.now(UTC).date())
    try:
        reports = check_topics(needs, platform.resources()["kafka"])
    except ServiceUnavailable as exc:
        return [*conflicts, f"source topics not checked ({exc.problem})"]
    return conflicts + [p for r in reports for p in r.problems]


@main.command(name="reprocess")
@click.argument("pipeline")
@click.option("--wait", is_flag=True, help="Run in the foreground until the swap (or a failed check).")
@click.option(
    "--accept",
    "accept",
    multiple=True,
    help="Accept this failed non-structural check (expectations, parity_with_live) for the candidate "
    "(repeatable; needs --reason; recorded in the swap with who and why).",
)
@click.option("--reason", help="Why the accepted checks' failures are right.")
@_platform_options
def reprocess_command(
    pipeline: str, wait: bool, accept: tuple[str, ...], reason: str | None, **options: Any
) -> None:
    """Replay the log into a new version, await catch-up, check it, swap the alias (the
    same run the reprocess sensor requests). Without --wait it runs in the background.
    A candidate that failed its checks is checked again; with --accept a failed
    non-structural check no longer blocks the swap."""
    import getpass
    import subprocess

    from kappa_orch.gate import check_acceptance

    platform = _platform(options)
    try:
        check_acceptance(accept, reason)
    except KappaError as exc:
        fail(exc)
        return
    if not wait:
        log_dir = platform.home / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_file = log_dir / f"reprocess-{pipeline}.log"
        argv = [sys.argv[0], "reprocess", pipeline, "--wait"]
        argv += [item for check in accept for item in ("--accept", check)]
        argv += ["--reason", reason] if reason else []
        with log_file.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **background_environment(options)},
            )
        click.echo(f"reprocess of {pipeline} started (pid {proc.pid}); log: {log_file}")
        return
    from dagster import AssetsDefinition, DagsterInstance, RunConfig

    from kappa_orch.dagster.assets import CandidateConfig, alias_key, pipeline_assets, version_key

    try:
        pipelines = _load(platform.specs)
        chosen = _pick(pipelines, pipeline, platform.specs)
        kafka, flink, warehouse = _resources(platform)
        instance = DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()
        assets = pipeline_assets(pipelines)
        [versions_op] = [
            a.op.name
            for a in assets
            if isinstance(a, AssetsDefinition) and version_key(chosen.spec) in a.keys
        ]
        result = run_in_foreground(
            assets,
            selection=[version_key(chosen.spec), alias_key(chosen.spec)],
            resources={"kafka": kafka, "flink": flink, "warehouse": warehouse},
            instance=instance,
            tags={"kappa/pipeline": pipeline, "kappa/user": getpass.getuser()},
            run_config=RunConfig(
                ops={versions_op: CandidateConfig(accept=list(accept), reason=reason or "")}
            ),
        )
        warehouse.dispose()
    except KappaError as exc:
        fail(exc)
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    if not result.success:
        for evaluation in failed:
            click.secho(f"check {evaluation.check_name} failed: {evaluation.description}", fg="red", err=True)
        errors = step_errors(result)
        if errors and not failed:
            fail(errors[0])
        reason = f"failed checks: {', '.join(e.check_name for e in failed)}" if failed else "see the run log"
        click.secho(f"reprocess of {pipeline} did not swap the alias ({reason})", fg="red", err=True)
        from kappa_orch.gate import STRUCTURAL_CHECKS

        waivable = [e.check_name for e in failed if e.check_name not in STRUCTURAL_CHECKS]
        if waivable:
            click.secho(
                f"fix: fix the spec and reprocess; or, if the data is right and the check is not, accept "
                f'it: kappa-orch reprocess {pipeline} --wait --accept {waivable[0]} --reason "..."',
                fg="yellow",
                err=True,
            )
        sys.exit(1)
    click.echo(f"reprocess of {pipeline} finished: {chosen.spec.target.alias} serves the spec's fingerprint")


def run_in_foreground(assets: list[Any], **kwargs: Any) -> Any:
    """`materialize` for a person at a terminal: kappa_orch's progress lines on stdout,
    Dagster's own console log (event lines, stack traces) kept quiet; the run's full
    log stays in the Dagster instance."""
    import logging

    from dagster import RunConfig, materialize

    from kappa_orch.dagster.assets import PROGRESS

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s  %(message)s", "%H:%M:%S"))
    PROGRESS.addHandler(handler)
    PROGRESS.setLevel(logging.INFO)
    run_config = kwargs.pop("run_config", None) or RunConfig()
    loggers = {"console": {"config": {"log_level": "DEBUG" if _debugging() else "CRITICAL"}}}
    run_config = RunConfig(ops=run_config.ops, resources=run_config.resources, loggers=loggers)
    try:
        return materialize(assets, run_config=run_config, raise_on_error=False, **kwargs)
    finally:
        PROGRESS.removeHandler(handler)


def _debugging() -> bool:
    from kappa_orch.cli import debugging

    return debugging()


def _blame_by_class() -> dict[str, str]:
    """kappa_orch's own errors by class name (all a run's event log keeps of them) and
    where each one's fault lies: read off the classes themselves."""
    import kappa_orch.spec.load  # noqa: F401  (its errors are KappaErrors too)

    found: dict[str, str] = {}
    pending: list[type[KappaError]] = [KappaError]
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls.blame
        pending.extend(cls.__subclasses__())
    return found


def step_errors(result: Any) -> list[KappaError]:
    """The errors the run's failed steps raised, as KappaErrors (their problem, fix and
    blame; a service's own error mapped like the CLI maps it)."""
    from kappa_orch.cli import known_failure

    blame_by_class = _blame_by_class()
    errors: list[KappaError] = []
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        error = event.step_failure_data.error
        chain = []
        while error is not None:
            chain.append(error)
            error = error.cause
        # the innermost error is the one raised in kappa_orch's code
        for info in reversed(chain):
            name = info.cls_name or ""
            if name in blame_by_class:
                problem, _, fix = info.message.strip().partition("\n  fix: ")
                problem = problem.removeprefix(f"{info.cls_name}: ").strip()
                errors.append(KappaError(problem, fix or None, blame=blame_by_class[name]))
                break
            mapped = known_failure(_Named(name, info.message))
            if mapped is not None:
                errors.append(mapped)
                break
        else:
            info = chain[-1]
            errors.append(KappaError(f"{info.cls_name}: {info.message.strip()}", "rerun with --debug"))
    return errors


class _Named(Exception):
    """An error known only by its class name and message (from a run's event log)."""

    def __init__(self, cls_name: str, message: str) -> None:
        super().__init__(message.strip().removeprefix(f"{cls_name}: "))
        self.cls_name = cls_name


@main.command(name="backfill")
@click.argument("pipeline")
@click.option("--from", "first", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First day.")
@click.option("--to", "last", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Last day (included).")
@click.option("--days-per-run", type=int, help="Days per Flink job (default: the spec's batch.days_per_run).")
@_platform_options
def backfill_command(pipeline: str, first: Any, last: Any, days_per_run: int | None, **options: Any) -> None:
    """Recompute days of a pipeline's batch table from the log (each day replaced atomically)."""
    import time
    from datetime import timedelta

    from kappa_orch.batch import consecutive_runs, run_batch

    platform = _platform(options)
    try:
        chosen = _pick(_load(platform.specs), pipeline, platform.specs)
        if chosen.spec.batch is None:
            raise SpecError(f"{pipeline!r} declares no batch table", "add a `batch:` section to its spec")
        start, end = first.date(), last.date()
        if end < start:
            raise OperationRefused(f"--to {end} is before --from {start}")
        days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
        runs = consecutive_runs(days, days_per_run or chosen.spec.batch.days_per_run)
        kafka, flink, warehouse = _resources(platform)
        started = time.monotonic()
        total_rows = 0
        for index, run_days in enumerate(runs, 1):
            result = run_batch(chosen, run_days, kafka=kafka, flink=flink, warehouse=warehouse)
            total_rows += sum(result.rows_per_day.values())
            click.echo(
                f"[{index}/{len(runs)}] {run_days[0]}..{run_days[-1]}: "
                f"{sum(result.rows_per_day.values()):,} rows in {result.seconds:.1f}s"
            )
        warehouse.dispose()
    except KappaError as exc:
        fail(exc)
        return
    click.echo(
        f"backfilled {len(days)} day(s) of {chosen.spec.target.schema_name}.{chosen.spec.batch_table} "
        f"in {len(runs)} job(s): {total_rows:,} rows in {time.monotonic() - started:.1f}s"
    )


@main.command(name="rollback")
@click.argument("pipeline")
@click.option("--to", "to_version", type=int, help="Version to serve (default: the one replaced last).")
@_platform_options
def rollback_command(pipeline: str, to_version: int | None, **options: Any) -> None:
    """Point the alias back at a retained version (a swap like any other)."""
    from kappa_orch import registry
    from kappa_orch.swap import swap

    platform = _platform(options)
    try:
        pipelines = _load(platform.specs)
        chosen = _pick(pipelines, pipeline, platform.specs)
        _, flink, warehouse = _resources(platform)
        if to_version is None:
            with warehouse.registry() as conn:
                replaced = [
                    r
                    for r in registry.pipeline_versions(conn, pipeline)
                    if r.state == registry.READY and r.replaced_at is not None
                ]
            if not replaced:
                raise OperationRefused(
                    f"{pipeline!r} has no retained replaced version to roll back to",
                    "`kappa-orch status` lists its versions; name one with --to",
                )
            to_version = max(replaced, key=lambda r: r.replaced_at or 0).version
        result = swap(
            chosen, warehouse=warehouse, flink=flink, to_version=to_version, reason="rollback", log=click.echo
        )
        warehouse.dispose()
    except KappaError as exc:
        fail(exc)
        return
    if not result.swapped:
        click.echo(f"{chosen.spec.target.alias} already serves v{result.to_version}")


@main.command(name="repair")
@click.argument("pipeline", required=False)
@click.option("--version", "versions", type=int, multiple=True, help="Repair only this version (repeatable).")
@_platform_options
def repair_command(pipeline: str | None, versions: tuple[int, ...], **options: Any) -> None:
    """Redeploy live and ready versions whose Flink job is gone (from their last retained
    checkpoint) and mark superseded candidates whose job is gone as failed; the repair
    sensor does the same on its own. Exit 1 when a version could not be repaired."""
    import uuid

    from kappa_orch.claims import owner_id
    from kappa_orch.repair import repair

    platform = _platform(options)
    failed: list[str] = []
    try:
        pipelines = _load(platform.specs)
        chosen = [_pick(pipelines, pipeline, platform.specs)] if pipeline else pipelines
        kafka, flink, warehouse = _resources(platform)
        owner = owner_id(f"cli-repair-{uuid.uuid4().hex[:8]}")
        for item in chosen:
            result = repair(
                item,
                kafka=kafka,
                flink=flink,
                warehouse=warehouse,
                owner=owner,
                versions=list(versions) or None,
                log=click.echo,
            )
            for version, deployed in sorted(result.redeployed.items()):
                click.echo(f"{item.name}: v{version} repaired, job {deployed.flink_job_id}")
            failed += [f"{item.name} v{v}: {why}" for v, why in sorted(result.failed.items())]
            if result.alias_rebuilt:
                click.echo(f"{item.name}: alias {item.spec.target.alias} rebuilt")
            if not (result.redeployed or result.abandoned or result.failed or result.alias_rebuilt):
                click.echo(f"{item.name}: every live and ready version's job runs; nothing to repair")
        warehouse.dispose()
    except KappaError as exc:
        fail(exc)
        return
    if failed:
        fail(KappaError("could not repair:\n  " + "\n  ".join(failed), "see the reasons above"))


@main.command(name="retire")
@click.argument("pipeline")
@click.argument("version", type=int)
@_platform_options
def retire_command(pipeline: str, version: int, **options: Any) -> None:
    """Stop a replaced version's job and drop its table now (before its grace period ends),
    e.g. to free a task slot. The live version cannot be retired."""
    from kappa_orch.swap import retire

    platform = _platform(options)
    try:
        chosen = _pick(_load(platform.specs), pipeline, platform.specs)
        _, flink, warehouse = _resources(platform)
        retire(chosen, version, flink=flink, warehouse=warehouse, log=click.echo)
        warehouse.dispose()
    except KappaError as exc:
        fail(exc)
