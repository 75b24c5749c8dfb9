"""Source topics are part of a spec's contract: what each topic must be (partitions,
retention) for the pipelines that read it, checked against the broker and, on request,
created.

Retention a topic needs: the longest of its readers' `start.retention_needed` and, for
batch pipelines, the range from `batch.start_date` to today (a backfill reads it all).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from kappa_orch.errors import KappaError
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.spec.model import LoadedPipeline, parse_duration
from kappa_orch.spec.rules import DAY_MS

FOREVER = -1  # retention.ms of a topic that keeps everything
KAFKA_DEFAULT_RETENTION_MS = 7 * DAY_MS  # the broker's log.retention.hours=168


@dataclass(frozen=True)
class TopicNeed:
    """What the pipelines reading one topic need of it (pure)."""

    topic: str
    readers: tuple[str, ...]
    partitions: int | None  # declared, else None (the deployment's default)
    retention_ms: int | None  # declared (FOREVER = unlimited), else None
    needed_ms: int | None  # history the readers need, else None
    needed_by: str = ""  # which reader needs it, and why
    max_message_bytes: int | None = None  # the largest event a reader declares, else None

    def retention_to_create(self, default_ms: int | None) -> int | None:
        """retention.ms to create the topic with: declared; else the deployment's default
        (None: the broker's), raised to what the readers need."""
        if self.retention_ms is not None:
            return self.retention_ms
        if self.needed_ms is None or default_ms == FOREVER:
            return default_ms
        return max(self.needed_ms, default_ms if default_ms is not None else KAFKA_DEFAULT_RETENTION_MS)


def topic_needs(pipelines: Sequence[LoadedPipeline], today: date) -> tuple[list[TopicNeed], list[str]]:
    """Each source topic's needs, and the conflicts between specs that declare it differently."""
    readers: dict[str, list[tuple[LoadedPipeline, int | None, int | None]]] = {}
    largest: dict[str, int] = {}
    for pipeline in pipelines:
        for source in pipeline.spec.sources:
            retention = None
            if source.retention == "forever":
                retention = FOREVER
            elif source.retention is not None:
                retention = int(parse_duration(source.retention) * 1000)
            readers.setdefault(source.topic, []).append((pipeline, source.partitions, retention))
            if source.max_message_bytes is not None:
                largest[source.topic] = max(largest.get(source.topic, 0), source.max_message_bytes)
    needs, conflicts = [], []
    for topic, found in sorted(readers.items()):
        declared_p = {p for _, p, _ in found if p is not None}
        declared_r = {r for _, _, r in found if r is not None}
        names = tuple(sorted({p.name for p, _, _ in found}))
        for what, values in (("partitions", declared_p), ("retention", declared_r)):
            if len(values) > 1:
                conflicts.append(f"{topic}: its readers ({', '.join(names)}) declare different {what}")
        needed_ms, needed_by = None, ""
        for pipeline, _, _ in found:
            for ms, why in _history_needed(pipeline, today):
                if needed_ms is None or ms > needed_ms:
                    needed_ms, needed_by = ms, f"{pipeline.name}: {why}"
        needs.append(
            TopicNeed(
                topic=topic,
                readers=names,
                partitions=max(declared_p) if declared_p else None,
                retention_ms=FOREVER if FOREVER in declared_r else max(declared_r) if declared_r else None,
                needed_ms=needed_ms,
                needed_by=needed_by,
                max_message_bytes=largest.get(topic),
            )
        )
    return needs, conflicts


def _history_needed(pipeline: LoadedPipeline, today: date) -> list[tuple[int, str]]:
    spec, needed = pipeline.spec, []
    if spec.start.retention_needed is not None:
        needed.append(
            (
                int(parse_duration(spec.start.retention_needed) * 1000),
                f"start.retention_needed {spec.start.retention_needed}",
            )
        )
    if spec.batch is not None:
        days = (today - spec.batch.start_date).days + 1
        if days > 0:
            needed.append((days * DAY_MS, f"batch days from {spec.batch.start_date} ({days} days)"))
    return needed


def shorter_than_needed(need: TopicNeed, retention_ms: int | None) -> str | None:
    """Why a retention (FOREVER, a number of ms, or None = unknown) is too short, or None (pure)."""
    if retention_ms is None or retention_ms == FOREVER or need.needed_ms is None:
        return None
    if retention_ms >= need.needed_ms:
        return None
    return (
        f"{need.topic}: retention {_days(retention_ms)} is shorter than the {_days(need.needed_ms)} "
        f"{need.needed_by} needs"
    )


def declared_retention_warnings(pipelines: Sequence[LoadedPipeline], today: date) -> list[str]:
    """Specs whose declared retention is shorter than what their readers need (pure; for validate)."""
    needs, conflicts = topic_needs(pipelines, today)
    return conflicts + [w for n in needs if (w := shorter_than_needed(n, n.retention_ms))]


def _shorter(actual: int, wanted: int) -> bool:
    """A retention shorter than wanted (FOREVER is the longest)."""
    if actual == FOREVER:
        return False
    return wanted == FOREVER or actual < wanted


def _days(ms: int) -> str:
    return "unlimited" if ms == FOREVER else f"{ms / DAY_MS:g}d"


@dataclass
class TopicReport:
    """A topic as the broker has it, against its needs."""

    need: TopicNeed
    exists: bool = False
    created: bool = False
    partitions: int | None = None
    retention_ms: int | None = None
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TopicDefaults:
    """What a topic kappa_orch creates gets where its spec declares nothing: partitions,
    and retention (None: the broker's)."""

    partitions: int = 3
    retention_ms: int | None = None


def check_topics(
    needs: Sequence[TopicNeed],
    kafka: KafkaResource,
    *,
    create: TopicDefaults | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> list[TopicReport]:
    """Each topic on the broker against its needs; with `create`, missing ones are created
    with the declared (or those default) partitions and enough retention. Existing topics
    are never altered: a difference is a problem with its fix."""
    existing = set(kafka.list_topics())
    default_partitions = create.partitions if create else 3
    default_retention_ms = create.retention_ms if create else None
    reports = []
    for need in needs:
        report = TopicReport(need)
        if need.topic not in existing and create is not None:
            retention = need.retention_to_create(default_retention_ms)
            config = {"retention.ms": str(retention)} if retention is not None else {}
            if need.max_message_bytes is not None:
                config["max.message.bytes"] = str(need.max_message_bytes)
            kafka.create_topic(need.topic, partitions=need.partitions or default_partitions, config=config)
            report.created = True
            largest = f", events up to {need.max_message_bytes:,} bytes" if need.max_message_bytes else ""
            log(
                f"{need.topic}: created ({need.partitions or default_partitions} partitions, retention "
                f"{_days(retention) if retention is not None else 'the broker default'}{largest})"
            )
        if need.topic in existing or report.created:
            _compare(report, kafka)
        else:
            report.problems.append(
                f"{need.topic}: does not exist (read by {', '.join(need.readers)}); "
                "create it with `kappa-orch topics --create`"
            )
        reports.append(report)
    return reports


def _compare(report: TopicReport, kafka: KafkaResource) -> None:
    need = report.need
    try:
        info = kafka.describe_topic(need.topic)
    except KappaError as exc:
        report.problems.append(f"{need.topic}: {exc.problem}")
        return
    report.exists = True
    report.partitions = info.partitions
    raw = info.config.get("retention.ms")
    report.retention_ms = int(raw) if raw is not None else None
    if need.partitions is not None and info.partitions < need.partitions:
        report.problems.append(
            f"{need.topic}: {info.partitions} partition(s), the spec declares {need.partitions}; "
            "add partitions with kafka-topics.sh --alter --partitions (keys move), or change the spec"
        )
    wanted, actual = need.retention_ms, report.retention_ms
    if wanted is not None and actual is not None and _shorter(actual, wanted):
        report.problems.append(
            f"{need.topic}: retention {_days(actual)}, the spec declares {_days(wanted)}; "
            f"raise it: kafka-configs.sh --alter --entity-type topics --entity-name {need.topic} "
            f"--add-config retention.ms={wanted}"
        )
    takes = info.config.get("max.message.bytes")
    if need.max_message_bytes is not None and takes is not None and int(takes) < need.max_message_bytes:
        report.problems.append(
            f"{need.topic}: takes events up to {int(takes):,} bytes (max.message.bytes), the spec "
            f"declares {need.max_message_bytes:,}; raise it: kafka-configs.sh --alter --entity-type "
            f"topics --entity-name {need.topic} --add-config max.message.bytes={need.max_message_bytes}"
        )
    short = shorter_than_needed(need, report.retention_ms)
    if short:
        report.problems.append(f"{short}; raise the topic's retention.ms")


def retention_gaps(kafka: KafkaResource, topics: Sequence[str], needed_from_ms: int) -> list[str]:
    """One message per topic partition whose retention already removed records the
    range needs: the oldest held record is newer than the start and older ones are gone."""
    problems = []
    for topic in topics:
        watermarks = kafka.watermarks(topic)
        for partition, first_ts in sorted(kafka.first_timestamps(topic).items()):
            low, _ = watermarks[partition]
            if low > 0 and first_ts is not None and first_ts > needed_from_ms:
                gap_from = datetime.fromtimestamp(needed_from_ms / 1000, UTC)
                gap_to = datetime.fromtimestamp(first_ts / 1000, UTC)
                problems.append(
                    f"topic {topic!r} partition {partition}: records before offset {low} were deleted "
                    f"by retention; it holds {gap_to:%Y-%m-%d %H:%M} on, the range needs "
                    f"{gap_from:%Y-%m-%d %H:%M} on (gap {gap_to - gap_from})"
                )
    return problems


def retention_verdict(pipeline: str, reports: Sequence[TopicReport] | None) -> dict[str, object]:
    """Whether the topics a pipeline reads keep the history a replay of it needs (pure):
    `verdict` ok / too short / unknown (the broker was not asked), and per topic its
    retention, the history needed and the problems."""
    if reports is None:
        return {"verdict": "unknown", "topics": []}
    mine = [r for r in reports if pipeline in r.need.readers]
    topics = [
        {
            "topic": r.need.topic,
            "retention_ms": r.retention_ms,
            "needed_ms": r.need.needed_ms,
            "problems": list(r.problems),
        }
        for r in mine
    ]
    verdict = "too short" if any(r.problems for r in mine) else "ok"
    return {"verdict": verdict, "topics": topics}
