"""What Flink and Kafka said about the deployed versions at one moment (`StreamAnswers`),
and how the sensors and checks ask them. A service that does not answer is recorded as an
outage (which service, what it said) instead of raising: what it would have told is then
simply not known, never assumed healthy."""

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kappa_orch.dagster.health import TROUBLED
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.engine.protocol import ACTIVE_JOB_STATES, Checkpoint, EngineJob
from kappa_orch.errors import FlinkJobError, KappaError, ServiceUnavailable
from kappa_orch.lifecycle.gate import late_records
from kappa_orch.lifecycle.orphans import Orphan, find_orphans
from kappa_orch.registry import store as registry
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.model import LoadedPipeline


@dataclass(frozen=True)
class TopicAnswer:
    """A topic's offsets per partition (earliest held, next) and its retention."""

    watermarks: dict[int, tuple[int, int]]
    retention_ms: int | None


@dataclass(frozen=True)
class StreamAnswers:
    """What Flink and Kafka said about the deployed versions at one moment. `outages` maps
    a service that did not answer ("flink", "kafka") to what went wrong; a version's
    entries are missing when it was not asked (outage, or the time budget ran out)."""

    observed_at_ms: int
    job_states: dict[str, str] = field(default_factory=dict)
    job_exceptions: dict[str, str] = field(default_factory=dict)
    checkpoints: dict[str, Checkpoint | None] = field(default_factory=dict)
    # why a job's checkpoints fail, when one failed after its last completed one
    checkpoint_failures: dict[str, str] = field(default_factory=dict)
    # an alive job that processes nothing (restarting, tasks waiting for slots): job ->
    # (since when, in ms; its tasks not running)
    stalls: dict[str, tuple[int, int]] = field(default_factory=dict)
    # job -> late records by where they went (gate.late_records)
    late_records: dict[str, dict[str, int]] = field(default_factory=dict)
    lags: dict[tuple[str, str], dict[int, int]] = field(default_factory=dict)
    # (group, topic) -> per partition, ms of event time the group trails the log by (only
    # for pipelines that declare a freshness)
    event_lags: dict[tuple[str, str], dict[int, int]] = field(default_factory=dict)
    topics: dict[str, TopicAnswer] = field(default_factory=dict)
    missing_topics: set[str] = field(default_factory=set)  # asked, and the broker has no such topic
    topic_ids: dict[str, str | None] = field(default_factory=dict)  # source topic -> Kafka topic id
    # jobs kappa_orch started that the registry does not know (orphans.find_orphans)
    orphans: list[Orphan] = field(default_factory=list)
    # a running job whose committed read position has not moved while records wait:
    # job -> (for how long, in s; records waiting), from two or more ticks (read_progress)
    stuck: dict[str, tuple[float, int]] = field(default_factory=dict)
    outages: dict[str, str] = field(default_factory=dict)


def _ask_flink(answers: StreamAnswers, flink: FlinkResource, job_id: str, routed_late: int) -> None:
    try:
        job = flink.job(job_id)
    except FlinkJobError:
        job = EngineJob(job_id, "", "UNKNOWN")  # the cluster does not know it (any more)
    state = answers.job_states[job_id] = job.state
    if state in ACTIVE_JOB_STATES and not job.processing:
        answers.stalls[job_id] = (job.since_ms or answers.observed_at_ms, job.waiting_tasks)
    if state in TROUBLED or job_id in answers.stalls:
        answers.job_exceptions[job_id] = flink.job_exception(job_id) or ""
    # a job still initializing (just submitted, or recovered by a new JobManager with HA
    # on) has no JobMaster yet: Flink refuses to tell its checkpoints and metrics
    if state not in ("UNKNOWN", "INITIALIZING"):
        answers.checkpoints[job_id], failure = flink.checkpoint_stats(job_id)
        if failure:
            answers.checkpoint_failures[job_id] = failure
        # no metrics yet (a job just started): nothing observed, nothing claimed
        late = late_records(routed_late, flink.known_late_records(job_id, metrics_wait_s=0, job=job))
        if late is not None:
            answers.late_records[job_id] = late


def gather_answers(
    watched: Sequence[tuple[LoadedPipeline, registry.VersionRow]],
    *,
    kafka: KafkaResource,
    flink: FlinkResource,
    deadline: float,
    inputs: Mapping[tuple[str, int], tuple[int, int, int]] | None = None,
    rows: Sequence[registry.VersionRow] | None = None,
) -> StreamAnswers:
    """Ask Flink and Kafka about each watched version, until the deadline (monotonic). A
    service that does not answer is asked nothing more this time (its outage is recorded).
    `inputs`: `registry.input_totals`, whose late records join Flink's counters. `rows`:
    every version of the registry, to find the jobs it does not know."""
    answers = StreamAnswers(observed_at_ms=int(time.time() * 1000))
    if rows is not None:
        try:
            answers.orphans.extend(find_orphans(flink.list_jobs(), rows, prefix=flink.job_name("")))
        except ServiceUnavailable as exc:
            answers.outages["flink"] = exc.problem
    for pipeline, row in watched:
        if time.monotonic() > deadline:
            break
        if "flink" not in answers.outages:
            try:
                routed = (inputs or {}).get((row.pipeline, row.version), (0, 0, 0))[2]
                _ask_flink(answers, flink, row.flink_job_id or "", routed)
            except ServiceUnavailable as exc:
                answers.outages["flink"] = exc.problem
        if "kafka" not in answers.outages:
            try:
                for source in pipeline.spec.sources:
                    lag = kafka.consumer_lag(row.group_id, source.topic)
                    answers.lags[(row.group_id, source.topic)] = lag
                    if pipeline.spec.freshness is not None:
                        behind = (
                            kafka.event_time_lag_ms(row.group_id, source.topic) if any(lag.values()) else {}
                        )
                        answers.event_lags[(row.group_id, source.topic)] = behind
            except ServiceUnavailable as exc:
                answers.outages["kafka"] = exc.problem
    return answers


def gather_topic_ids(topics: Sequence[str], answers: StreamAnswers, *, kafka: KafkaResource) -> None:
    """The source topics' ids, in one request: a topic deleted and created again has a new one."""
    if "kafka" in answers.outages or not topics:
        return
    try:
        answers.topic_ids.update(kafka.topic_ids(topics))
    except ServiceUnavailable as exc:
        answers.outages["kafka"] = exc.problem


def gather_topics(
    topics: Sequence[str], answers: StreamAnswers, *, kafka: KafkaResource, deadline: float
) -> None:
    """Offsets and retention of each topic, until the deadline; a missing topic is skipped."""
    for topic in topics:
        if time.monotonic() > deadline or "kafka" in answers.outages:
            break
        try:
            info = kafka.describe_topic(topic)
            watermarks = kafka.watermarks(topic)
        except ServiceUnavailable as exc:
            answers.outages["kafka"] = exc.problem
            break
        except KappaError:
            answers.missing_topics.add(topic)  # not created yet (or deleted): nothing to observe
            continue
        retention = info.config.get("retention.ms")
        answers.topics[topic] = TopicAnswer(
            watermarks=watermarks, retention_ms=int(retention) if retention else None
        )


def recorded_checkpoints(
    watched: Sequence[tuple[LoadedPipeline, registry.VersionRow]], answers: StreamAnswers
) -> list[tuple[registry.VersionRow, dict[str, object]]]:
    """The versions whose job completed a newer checkpoint than the registry holds, with
    it: what `record_checkpoints` writes, so a job the cluster forgets resumes from it."""
    newer = []
    for _pipeline, row in watched:
        checkpoint = answers.checkpoints.get(row.flink_job_id or "")
        if checkpoint is None or not checkpoint.external_path:
            continue
        if (row.checkpoint or {}).get("path") == checkpoint.external_path:
            continue
        value = {
            "checkpoint_id": checkpoint.checkpoint_id,
            "path": checkpoint.external_path,
            "completed_at_ms": checkpoint.completed_at_ms,
        }
        newer.append((row, value))
    return newer


def record_checkpoints(
    warehouse: WarehouseResource,
    watched: Sequence[tuple[LoadedPipeline, registry.VersionRow]],
    answers: StreamAnswers,
    *,
    warn: Callable[[str], object],
) -> None:
    """Write each version's newest observed checkpoint to the registry (the observer's one
    write); a registry that does not take it is warned about (the next tick tries again)."""
    newer = recorded_checkpoints(watched, answers)
    if not newer:
        return
    try:
        with registry.session(warehouse) as conn:
            for row, checkpoint in newer:
                registry.record_checkpoint(
                    conn, row.pipeline, row.version, row.flink_job_id or "", checkpoint
                )
    except ServiceUnavailable as exc:
        warn(f"checkpoints not recorded in the registry: {exc.problem}")


# a read position unchanged for this long (several checkpoints: Flink commits offsets at
# each completed checkpoint) while records wait is a job that reads nothing
STUCK_AFTER_S = 20.0


def read_progress(
    watched: Sequence[tuple[LoadedPipeline, registry.VersionRow]],
    answers: StreamAnswers,
    before: dict[str, Any],
) -> dict[str, Any]:
    """Each watched job's committed read position (the topic's end less its lag, per
    partition) and since when it has not moved; fills `answers.stuck` for the jobs whose
    position stood still for STUCK_AFTER_S while records wait. Returns the new positions
    (the sensor's cursor keeps them from tick to tick)."""
    now_ms = answers.observed_at_ms
    positions: dict[str, Any] = {}
    for pipeline, row in watched:
        job = row.flink_job_id or ""
        read: dict[str, int] = {}
        waiting = 0
        for source in pipeline.spec.sources:
            lags, topic = answers.lags.get((row.group_id, source.topic)), answers.topics.get(source.topic)
            if lags is None or topic is None:
                break
            for partition, (_, end) in topic.watermarks.items():
                lag = lags.get(partition, 0)
                read[f"{source.topic}/{partition}"] = end - lag
                waiting += lag
        else:
            previous = before.get(job)
            same = previous is not None and previous["read"] == read
            positions[job] = previous if same else {"read": read, "since_ms": now_ms}
            still_s = (now_ms - positions[job]["since_ms"]) / 1000
            if same and waiting > 0 and still_s >= STUCK_AFTER_S:
                answers.stuck[job] = (still_s, waiting)
    return positions
