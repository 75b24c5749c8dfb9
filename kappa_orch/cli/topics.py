"""`kappa-orch topics`: the source topics every spec reads, checked against the broker."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import click

from kappa_orch.cli import fail, main
from kappa_orch.cli.options import load_specs, platform_of, platform_options
from kappa_orch.errors import KappaError, OperationRefused


@main.command(name="topics")
@click.option("--create", is_flag=True, help="Create the missing topics (existing ones are never altered).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@platform_options
def topics_command(create: bool, as_json: bool, **options: Any) -> None:
    """Check every source topic the specs read: it exists, has the partitions the spec
    declares, and keeps the history its readers need (start.retention_needed, the batch
    range). Exit 1 on a problem. With --create, missing topics are made with the declared
    partitions and retention (else the deployment's: KAPPA_TOPIC_PARTITIONS, KAPPA_TOPIC_RETENTION)."""
    from kappa_orch.topics import check_topics, topic_needs

    platform = platform_of(options)
    try:
        pipelines = load_specs(platform.specs)
        needs, conflicts = topic_needs(pipelines, datetime.now(UTC).date())
        if conflicts:
            raise OperationRefused(
                "specs disagree on their topics:\n  " + "\n  ".join(conflicts),
                "declare the same partitions and retention in every spec that reads a topic",
            )
        kafka = platform.resources()["kafka"]
        reports = check_topics(
            needs,
            kafka,
            create=create,
            default_partitions=platform.topic_partitions,
            default_retention_ms=platform.topic_retention_ms(),
            log=click.echo,
        )
    except KappaError as exc:
        fail(exc)
        return
    if as_json:
        click.echo(json.dumps([asdict(r) for r in reports], indent=2))
    else:
        for r in reports:
            state = "created" if r.created else "ok" if r.exists and not r.problems else "PROBLEM"
            click.echo(
                f"{r.need.topic:<40} {state:<8} partitions {r.partitions or '-':<4} "
                f"retention {_retention(r.retention_ms):<10} read by {', '.join(r.need.readers)}"
            )
    problems = [p for r in reports for p in r.problems]
    for problem in problems:
        click.secho(f"  {problem}", fg="red", err=True)
    if problems:
        raise SystemExit(1)


def _retention(ms: int | None) -> str:
    if ms is None:
        return "?"
    return "forever" if ms < 0 else f"{ms / 86_400_000:g}d"
