"""Operating commands: reprocess, backfill, rollback, repair, retire."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Any

import click

from kappa_orch.cli import fail, main
from kappa_orch.cli.options import (
    background_environment,
    load_specs,
    pick,
    platform_of,
    platform_options,
    services_of,
)
from kappa_orch.errors import KappaError, OperationRefused, SpecError


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
@click.option(
    "--force",
    is_flag=True,
    help="Replay the log into a new version even though the spec's fingerprint is live (a rebuild: "
    "through the same gate and swap; needs --reason; recorded with who asked and why).",
)
@click.option("--reason", help="Why the accepted checks' failures are right, or why --force rebuilds.")
@click.option(
    "--approve",
    "approve",
    metavar="PLAN_ID",
    help="Approve the change that waits under this plan id (`kappa-orch plan` shows it): exactly that "
    "change, recorded with who approved it.",
)
@click.option(
    "--definitions",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The code location file (as `dagster -f` takes it) whose assets and resources the run uses: "
    "its translator's keys, groups and metadata [default: kappa_orch's own assets for the specs "
    "folder].",
)
@platform_options
def reprocess_command(pipeline: str, wait: bool, definitions: Path | None, **options: Any) -> None:
    """Replay the log into a new version, await catch-up, check it, swap the alias (the
    same run the reprocess sensor requests). Without --wait it runs in the background.
    A candidate that failed its checks is checked again; with --accept a failed
    non-structural check no longer blocks the swap."""
    from kappa_orch.lifecycle.gate import check_acceptance
    from kappa_orch.lifecycle.reprocess import Acceptance

    acceptance = Acceptance(
        tuple(options.pop("accept")),
        options.pop("reason"),
        approve=options.pop("approve"),
        force=options.pop("force"),
    )
    platform = platform_of(options)
    check_acceptance(acceptance.checks, acceptance.reason)
    if acceptance.force and not acceptance.reason:
        raise OperationRefused(
            "--force replays the whole log into a new version and needs a reason",
            f'kappa-orch reprocess {pipeline} --force --reason "<why the table is rebuilt>"',
        )
    if not wait:
        _in_background(pipeline, acceptance, platform.home / "logs", options, definitions)
        return
    alias = reprocess_here(pipeline, acceptance, platform, definitions)
    click.echo(f"reprocess of {pipeline} finished: {alias} serves the spec's fingerprint")


def reprocess_here(pipeline: str, acceptance: Any, platform: Any, definitions: Path | None = None) -> str:
    """The reprocess run in this process (`acceptance`: the failed checks it accepts, and
    why); on an error or a failed run, its message and exit status (1). The alias it
    swapped, when it succeeded."""
    result, alias = _reprocess_in_foreground(pipeline, acceptance, platform, definitions)
    if not result.success:
        _report_failed_reprocess(pipeline, result)
    return str(alias)


def _in_background(
    pipeline: str, acceptance: Any, log_dir: Path, options: dict[str, Any], definitions: Path | None
) -> None:
    """The same command with --wait, detached, its output in the stack's logs folder; the
    options travel as KAPPA_* variables (no password on a command line `ps` shows)."""
    import subprocess

    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"reprocess-{pipeline}.log"
    argv = [sys.argv[0], "reprocess", pipeline, "--wait"]
    argv += [item for check in acceptance.checks for item in ("--accept", check)]
    argv += ["--reason", acceptance.reason] if acceptance.reason else []
    argv += ["--approve", acceptance.approve] if acceptance.approve else []
    argv += ["--force"] if acceptance.force else []
    argv += ["--definitions", str(definitions.resolve())] if definitions else []
    with log_file.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **background_environment(options)},
        )
    click.echo(f"reprocess of {pipeline} started (pid {proc.pid}); log: {log_file}")


def _reprocess_in_foreground(
    pipeline: str, acceptance: Any, platform: Any, definitions: Path | None
) -> tuple[Any, str]:
    """The reprocess run (the versions and alias assets of one pipeline), here and now."""
    import getpass

    from dagster import DagsterInstance, RunConfig

    from kappa_orch.cli.code_location import run_selection
    from kappa_orch.dagster.assets import CandidateConfig

    pipelines = load_specs(platform.specs)
    chosen = pick(pipelines, pipeline, platform.specs)
    own = platform.resources()
    warehouse = own["warehouse"]
    instance = DagsterInstance.from_config(str(dagster_home(platform.home)))
    assets, selection, versions_op, resources = run_selection(pipelines, chosen, platform, definitions, own)
    result = run_in_foreground(
        assets,
        selection=selection,
        resources=resources,
        instance=instance,
        tags={"kappa/pipeline": pipeline, "kappa/user": getpass.getuser()},
        run_config=RunConfig(
            ops={
                versions_op: CandidateConfig(
                    accept=list(acceptance.checks),
                    reason=acceptance.reason or "",
                    approve=acceptance.approve or "",
                    force=acceptance.force,
                )
            }
        ),
    )
    warehouse.dispose()
    return result, chosen.spec.target.alias


def dagster_home(kappa_home: Path) -> Path:
    """The Dagster instance CLI runs are recorded in, so the UI shows them: DAGSTER_HOME,
    else `<KAPPA_HOME>/dagster` (what `dagster dev` is started with in the docs)."""
    home = Path(os.environ.get("DAGSTER_HOME") or kappa_home / "dagster").resolve()
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        settings.write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    return home


def _report_failed_reprocess(pipeline: str, result: Any) -> None:
    """Which checks failed (and how to accept a waivable one), or the step's error; exit 1."""
    from kappa_orch.lifecycle.gate import STRUCTURAL_CHECKS, check_fix

    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    for evaluation in failed:
        click.secho(f"check {evaluation.check_name} failed: {evaluation.description}", fg="red", err=True)
    errors = step_errors(result)
    if errors and not failed:
        fail(errors[0])
    reason = f"failed checks: {', '.join(e.check_name for e in failed)}" if failed else "see the run log"
    click.secho(f"reprocess of {pipeline} did not swap the alias ({reason})", fg="red", err=True)
    waivable = [e.check_name for e in failed if e.check_name not in STRUCTURAL_CHECKS]
    if waivable:
        click.secho(f"fix: {check_fix(pipeline, waivable[0])}", fg="yellow", err=True)
    sys.exit(1)


def run_in_foreground(assets: list[Any], **kwargs: Any) -> Any:
    """The reprocess job's run for a person at a terminal: kappa_orch's progress lines on
    stdout, Dagster's console log kept quiet (its full log stays in the instance)."""
    import logging

    from dagster import AssetSelection, Definitions, RunConfig, define_asset_job

    from kappa_orch.cli import debugging
    from kappa_orch.dagster.automation import REPROCESS_JOB
    from kappa_orch.dagster.lineage import PROGRESS
    from kappa_orch.progress import ProgressHandler, ProgressPrinter

    printer = ProgressPrinter(sys.stdout)
    handler = ProgressHandler(printer)
    PROGRESS.addHandler(handler)
    PROGRESS.setLevel(logging.INFO)
    run_config = kwargs.pop("run_config", None) or RunConfig()
    loggers = {"console": {"config": {"log_level": "DEBUG" if debugging() else "CRITICAL"}}}
    run_config = RunConfig(ops=run_config.ops, resources=run_config.resources, loggers=loggers)
    # a run named after what it does, as the sensor's (not Dagster's __ephemeral_asset_job__)
    job = define_asset_job(REPROCESS_JOB, selection=AssetSelection.assets(*kwargs.pop("selection")))
    defs = Definitions(assets=assets, jobs=[job], resources=kwargs.pop("resources"))
    try:
        run = defs.resolve_job_def(REPROCESS_JOB)
        return run.execute_in_process(run_config=run_config, raise_on_error=False, **kwargs)
    finally:
        PROGRESS.removeHandler(handler)
        printer.close()


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
    from kappa_orch.dagster.runs import error_of
    from kappa_orch.errors import known_failure

    blame_by_class = _blame_by_class()
    errors: list[KappaError] = []
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        expected = error_of(event.step_failure_data.user_failure_data)
        if expected is not None:  # a KappaError the step failed with (dagster/runs.py)
            errors.append(expected)
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
@platform_options
def backfill_command(pipeline: str, first: Any, last: Any, days_per_run: int | None, **options: Any) -> None:
    """Recompute days of a pipeline's batch table from the log (each day replaced atomically)."""
    import time
    from datetime import timedelta

    from kappa_orch.lifecycle.batch import consecutive_runs, run_batch
    from kappa_orch.progress import ProgressLine, ProgressPrinter

    platform = platform_of(options)
    chosen = pick(load_specs(platform.specs), pipeline, platform.specs)
    if chosen.spec.batch is None:
        raise SpecError(f"{pipeline!r} declares no batch table", "add a `batch:` section to its spec")
    start, end = first.date(), last.date()
    if end < start:
        raise OperationRefused(f"--to {end} is before --from {start}")
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    runs = consecutive_runs(days, days_per_run or chosen.spec.batch.days_per_run)
    services = services_of(platform).telling(lambda _: None)  # the runs' lines below say it
    started = time.monotonic()
    total_rows = 0
    printer = ProgressPrinter()
    for index, run_days in enumerate(runs, 1):
        result = run_batch(chosen, run_days, services)
        total_rows += sum(result.rows_per_day.values())
        text = (
            f"[{index}/{len(runs)}] {run_days[0]}..{run_days[-1]}: "
            f"{sum(result.rows_per_day.values()):,} rows in {result.seconds:.1f}s"
        )
        printer.line(ProgressLine(text, index / len(runs)))
    printer.close()
    services.warehouse.dispose()
    click.echo(
        f"backfilled {len(days)} day(s) of {chosen.spec.target.schema_name}.{chosen.spec.batch_table} "
        f"in {len(runs)} job(s): {total_rows:,} rows in {time.monotonic() - started:.1f}s"
    )


@main.command(name="rollback")
@click.argument("pipeline")
@click.option("--to", "to_version", type=int, help="Version to serve (default: the one replaced last).")
@platform_options
def rollback_command(pipeline: str, to_version: int | None, **options: Any) -> None:
    """Point the alias back at a retained version (a swap like any other)."""
    from kappa_orch.lifecycle.swap import SwapRequest, swap
    from kappa_orch.registry import store as registry
    from kappa_orch.registry.claims import owner_id

    platform = platform_of(options)
    run_id = f"cli-rollback-{uuid.uuid4().hex[:8]}"
    pipelines = load_specs(platform.specs)
    chosen = pick(pipelines, pipeline, platform.specs)
    services = services_of(platform)
    warehouse = services.warehouse
    if to_version is None:
        with registry.session(warehouse) as conn:
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
    request = SwapRequest(
        to_version=to_version,
        reason="rollback",
        run_id=run_id,
        git_commit=platform.commit(),
        owner=owner_id(run_id),  # waits for a reprocess in flight: its swap would undo this
        check_job=True,
    )
    result = swap(chosen, services, request)
    warehouse.dispose()
    if not result.swapped:
        click.echo(f"{chosen.spec.target.alias} already serves v{result.to_version}")


@main.command(name="repair")
@click.argument("pipeline", required=False)
@click.option("--version", "versions", type=int, multiple=True, help="Repair only this version (repeatable).")
@platform_options
def repair_command(pipeline: str | None, versions: tuple[int, ...], **options: Any) -> None:
    """Redeploy live and ready versions whose Flink job is gone (from their last retained
    checkpoint) and mark superseded candidates whose job is gone as failed; the repair
    sensor does the same on its own. Exit 1 when a version could not be repaired."""
    import uuid

    from kappa_orch.lifecycle.repair import repair
    from kappa_orch.registry.claims import owner_id

    platform = platform_of(options)
    failed: list[str] = []
    pipelines = load_specs(platform.specs)
    chosen = [pick(pipelines, pipeline, platform.specs)] if pipeline else pipelines
    services = services_of(platform)
    run_id = f"cli-repair-{uuid.uuid4().hex[:8]}"
    owner, provenance = owner_id(run_id), (run_id, platform.commit())
    for item in chosen:
        result = repair(item, services, owner=owner, versions=list(versions) or None, provenance=provenance)
        for version, deployed in sorted(result.redeployed.items()):
            click.echo(f"{item.name}: v{version} repaired, job {deployed.flink_job_id}")
        failed += [f"{item.name} v{v}: {why}" for v, why in sorted(result.failed.items())]
        if result.alias_rebuilt:
            click.echo(f"{item.name}: alias {item.spec.target.alias} rebuilt")
        if not (
            result.redeployed or result.abandoned or result.failed or result.alias_rebuilt or result.cancelled
        ):
            click.echo(f"{item.name}: every live and ready version's job runs; nothing to repair")
    services.warehouse.dispose()
    if failed:
        fail(KappaError("could not repair:\n  " + "\n  ".join(failed), "see the reasons above"))
