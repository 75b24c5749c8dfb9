"""`kappa-orch topics`: the source topics every spec reads, checked against the broker."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import click

from kappa_orch.cli import main
from kappa_orch.cli.options import load_specs, platform_of, platform_options, services_of
from kappa_orch.errors import OperationRefused


@main.command(name="topics")
@click.option("--create", is_flag=True, help="Create the missing topics (existing ones are never altered).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@platform_options
def topics_command(create: bool, as_json: bool, **options: Any) -> None:
    """Check every source topic the specs read: it exists, has the partitions the spec
    declares, and keeps the history its readers need (start.retention_needed, the batch
    range). Exit 1 on a problem. With --create, missing topics are made with the declared
    partitions and retention (else the deployment's: KAPPA_TOPIC_PARTITIONS, KAPPA_TOPIC_RETENTION)."""
    from kappa_orch.lifecycle.topics import TopicDefaults, check_topics, topic_needs

    platform = platform_of(options)
    pipelines = load_specs(platform.specs)
    needs, conflicts = topic_needs(pipelines, datetime.now(UTC).date())
    if conflicts:
        raise OperationRefused(
            "specs disagree on their topics:\n  " + "\n  ".join(conflicts),
            "declare the same partitions and retention in every spec that reads a topic",
        )
    kafka = platform.resources()["kafka"]
    defaults = TopicDefaults(platform.topic_partitions, platform.topic_retention_ms())
    reports = check_topics(needs, kafka, create=defaults if create else None, log=click.echo)
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


@main.command(name="dead-letters")
@click.argument("pipeline")
@click.option("--version", "version", type=int, default=None, help="Only this version's letters.")
@click.option(
    "--limit", type=click.IntRange(min=0), default=10, show_default=True, help="Latest letters shown."
)
@click.option("--json", "as_json", is_flag=True, help="Print counts and letters as JSON.")
@platform_options
def dead_letters_command(
    pipeline: str, version: int | None, limit: int, as_json: bool, **options: Any
) -> None:
    """A pipeline's dead letters (of one version with --version): the distinct broken input
    records per version by reason (a letter a restored job wrote again counts once), and
    the newest letters first, with their source topic, partition, offset and payload."""
    from collections import Counter

    from kappa_orch.cli.options import pick
    from kappa_orch.lifecycle.dead_letters import distinct, letters_of, sample, version_label
    from kappa_orch.registry import store as registry

    platform = platform_of(options)
    chosen = pick(load_specs(platform.specs), pipeline, platform.specs)
    if version is not None:
        with platform.resources()["warehouse"].begin() as conn:
            known = [r.version for r in registry.pipeline_versions(conn, chosen.name)]
        if version not in known:
            versions = ", ".join(f"v{v}" for v in sorted(known)) or "none yet"
            raise OperationRefused(
                f"{chosen.name} has no version {version} (its versions: {versions})",
                f"pick one of them, or leave out --version; `kappa-orch history {chosen.name}`",
            )
    kafka = platform.resources()["kafka"]
    topic = chosen.spec.dead_letter_topic
    written = letters_of(kafka, topic, pipeline=chosen.name, version=version)
    letters = distinct(written)
    by_version = Counter(version_label(x.pipeline, x.version) for x in letters)
    by_reason = Counter(x.reason for x in letters)
    newest = sorted(written, key=lambda x: (x.timestamp_ms or 0, x.partition, x.offset), reverse=True)
    summary = {
        "topic": topic,
        "broken_records": len(letters),
        "by_version": by_version,
        "by_reason": by_reason,
        "letters_written": len(written),
        "latest": [sample(letter) for letter in newest[:limit]],
    }
    if as_json:
        click.echo(json.dumps(summary))
        return
    _print_letters(f"{chosen.name} v{version}" if version is not None else chosen.name, summary)


def _print_letters(which: str, summary: dict[str, Any]) -> None:
    topic, written, latest = summary["topic"], summary["letters_written"], summary["latest"]
    by_version, by_reason = summary["by_version"], summary["by_reason"]
    broken = sum(by_version.values())
    again = (
        f"; {written - broken:,} letter(s) written again after a restore not counted"
        if written > broken
        else ""
    )
    click.echo(f"{broken:,} distinct broken input record(s) of {which} in {topic}{again}")
    for label, count in sorted(by_version.items()):
        click.echo(f"  {label}: {count:,}")
    for reason, count in by_reason.most_common():
        click.echo(f"  {count:>10,}  {reason}")
    if latest:
        click.echo("newest first:")
    for letter in latest:
        source = f"{letter['source_topic']}[{letter['source_partition']}]@{letter['source_offset']}"
        times = (
            f" (event time {letter['event_time']}, watermark {letter['watermark']})"
            if letter.get("watermark")
            else ""
        )
        click.echo(f"v{letter['version']} {source}: {letter['reason']}{times}: {letter['payload']}")


@main.command(name="accept-log")
@click.argument("pipeline")
@click.option("--version", "version", type=int, required=True, help="The version whose table is kept.")
@click.option("--reason", required=True, help="Why its table is right although its log was replaced.")
@platform_options
def accept_log_command(pipeline: str, version: int, reason: str, **options: Any) -> None:
    """Keep a version's table although a source topic was deleted and created again under its
    job (its table holds rows of the old log; the new log's offsets started again). The new
    topic ids become the version's, with who accepted it and why. The other way out is a
    replay of the new log into a new version: `kappa-orch reprocess PIPELINE`."""
    import getpass

    from kappa_orch.cli.options import pick
    from kappa_orch.lifecycle.repair import accept_replaced_log

    platform = platform_of(options)
    chosen = pick(load_specs(platform.specs), pipeline, platform.specs)
    accepted = accept_replaced_log(
        services_of(platform), chosen.name, version, by=getpass.getuser(), reason=reason
    )
    for replaced in accepted:
        click.echo(
            f"{chosen.name} v{version}: the log of {replaced['topic']} (topic id {replaced['was']} -> "
            f"{replaced['now']}) accepted: {reason}"
        )
