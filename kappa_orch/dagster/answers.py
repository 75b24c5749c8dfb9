"""What Flink and Kafka said about the deployed versions at one moment (`StreamAnswers`),
and how the sensors and checks ask them. A service that does not answer is recorded as an
outage (which service, what it said) instead of raising: what it would have told is then
simply not known, never assumed healthy."""

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from kappa_orch import registry
from kappa_orch.dagster.health import TROUBLED
from kappa_orch.errors import KappaError, ServiceUnavailable
from kappa_orch.resources.flink import Checkpoint, FlinkResource
from kappa_orch.resources.kafka import KafkaResource
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
    late_records: dict[str, dict[str, int]] = field(default_factory=dict)  # job -> operator -> dropped
    lags: dict[tuple[str, str], dict[int, int]] = field(default_factory=dict)
    topics: dict[str, TopicAnswer] = field(default_factory=dict)
    outages: dict[str, str] = field(default_factory=dict)


def _ask_flink(answers: StreamAnswers, flink: FlinkResource, job_id: str) -> None:
    state = flink.job_state(job_id)
    answers.job_states[job_id] = state
    if state in TROUBLED:
        answers.job_exceptions[job_id] = flink.job_exception(job_id) or ""
    if state != "UNKNOWN":
        answers.checkpoints[job_id] = flink.last_checkpoint(job_id)
        # no metrics yet (a job just started): nothing observed, nothing claimed
        late = flink.known_late_records(job_id, metrics_wait_s=0)
        if late is not None:
            answers.late_records[job_id] = late


def gather_answers(
    watched: Sequence[tuple[LoadedPipeline, registry.VersionRow]],
    *,
    kafka: KafkaResource,
    flink: FlinkResource,
    deadline: float,
) -> StreamAnswers:
    """Ask Flink and Kafka about each watched version, until the deadline (monotonic). A
    service that does not answer is asked nothing more this time (its outage is recorded)."""
    answers = StreamAnswers(observed_at_ms=int(time.time() * 1000))
    for pipeline, row in watched:
        if time.monotonic() > deadline:
            break
        if "flink" not in answers.outages:
            try:
                _ask_flink(answers, flink, row.flink_job_id or "")
            except ServiceUnavailable as exc:
                answers.outages["flink"] = exc.problem
        if "kafka" not in answers.outages:
            try:
                for source in pipeline.spec.sources:
                    lag = kafka.consumer_lag(row.group_id, source.topic)
                    answers.lags[(row.group_id, source.topic)] = lag
            except ServiceUnavailable as exc:
                answers.outages["kafka"] = exc.problem
    return answers


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
            continue  # not created yet: nothing to observe
        retention = info.config.get("retention.ms")
        answers.topics[topic] = TopicAnswer(
            watermarks=watermarks, retention_ms=int(retention) if retention else None
        )
