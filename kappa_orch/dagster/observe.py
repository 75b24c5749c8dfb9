"""The stream observation sensor: what each deployed version's job and consumer group
are doing, reported as asset observations with numeric metadata so the UI plots them.

It observes only: no offset commits, no restarts; its one registry write is each job's
newest completed checkpoint (what a lost job resumes from). The decision
(which observations, with what metadata) is a pure function of recorded answers.
"""

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetObservation,
    DefaultSensorStatus,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from kappa_orch.dagster.alias_state import alias_observations, read_aliases
from kappa_orch.dagster.answers import (
    StreamAnswers,
    gather_answers,
    gather_topic_ids,
    gather_topics,
    read_progress,
    record_checkpoints,
)
from kappa_orch.dagster.health_alerts import alert_health, health_findings, observed_verdicts
from kappa_orch.dagster.letters import letter_topics, observe_letters
from kappa_orch.dagster.names import STREAM_OBSERVER
from kappa_orch.dagster.repairs import instance_of
from kappa_orch.dagster.stream_checks import (
    Verdict,
    registry_outage_verdicts,
    verdict_evaluation,
)
from kappa_orch.dagster.translator import DEFAULT_TRANSLATOR, KappaTranslator
from kappa_orch.dagster.version_observations import stream_observations
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.errors import ServiceUnavailable
from kappa_orch.lifecycle.services import Services
from kappa_orch.registry import store as registry
from kappa_orch.resources.alerts import AlertResource
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.model import LoadedPipeline


def observed_versions(
    pipelines: Sequence[LoadedPipeline], rows: Sequence[registry.VersionRow]
) -> list[tuple[LoadedPipeline, registry.VersionRow]]:
    """The versions worth watching: known pipelines, running states, with a job."""
    by_name = {p.name: p for p in pipelines}
    return [
        (by_name[r.pipeline], r)
        for r in rows
        if r.pipeline in by_name and r.state in registry.RUNNING_STATES and r.flink_job_id
    ]


def catch_up_progress(
    watched: Sequence[tuple[LoadedPipeline, registry.VersionRow]],
    answers: StreamAnswers,
    previous: dict[str, list[float]],
) -> tuple[dict[tuple[str, int], dict[str, float]], dict[str, list[float]]]:
    """For each version catching up: the share of the held log it has read
    (`catch_up_pct`), its speed since the previous tick (`events_per_s`) and the time
    left at that speed (`eta_s`); and the cursor (records read, at ms) for the next tick."""
    progress: dict[tuple[str, int], dict[str, float]] = {}
    cursor: dict[str, list[float]] = {}
    for pipeline, row in watched:
        topics = {s.topic for s in pipeline.spec.sources}
        lags = [answers.lags.get((row.group_id, t)) for t in topics]
        if row.state != registry.CATCHING_UP or None in lags or not topics <= set(answers.topics):
            continue
        held = sum(high - low for t in topics for low, high in answers.topics[t].watermarks.values())
        lag = sum(sum(per.values()) for per in lags if per is not None)
        if held <= 0:
            continue
        done = max(0, held - lag)
        metrics = {"catch_up_pct": round(100 * done / held, 1)}
        key, now = f"{row.pipeline}:{row.version}", answers.observed_at_ms
        before = previous.get(key)
        if before is not None and now > before[1] and done >= before[0]:
            rate = (done - before[0]) / ((now - before[1]) / 1000)
            metrics["events_per_s"] = round(rate, 1)
            if rate > 0:
                metrics["eta_s"] = round(lag / rate, 1)
        progress[(row.pipeline, row.version)] = metrics
        cursor[key] = [done, now]
    return progress, cursor


def topic_observations(
    answers: StreamAnswers, previous: dict[str, list[int]], translator: KappaTranslator = DEFAULT_TRANSLATOR
) -> tuple[list[AssetObservation], dict[str, list[int]]]:
    """One observation per topic: offsets, records held, retention and the message rate
    since the previous tick (`previous` maps topic -> [end offset total, at ms]; pure)."""
    observations, cursor = [], {}
    for topic, answer in sorted(answers.topics.items()):
        end_total = sum(high for _, high in answer.watermarks.values())
        held = sum(high - low for low, high in answer.watermarks.values())
        metadata: dict[str, object] = {
            "partitions": len(answer.watermarks),
            "end_offset_total": end_total,
            "records_held": held,
        }
        for partition, (low, high) in sorted(answer.watermarks.items()):
            metadata[f"end_offset/{partition}"] = high
            metadata[f"earliest_offset/{partition}"] = low
        if answer.retention_ms is not None:
            metadata["retention_hours"] = (
                round(answer.retention_ms / 3_600_000, 2) if answer.retention_ms >= 0 else -1
            )
        before = previous.get(topic)
        if before is not None and answers.observed_at_ms > before[1] and end_total >= before[0]:
            seconds = (answers.observed_at_ms - before[1]) / 1000
            metadata["messages_per_s"] = round((end_total - before[0]) / seconds, 2)
        cursor[topic] = [end_total, answers.observed_at_ms]
        key = translator.key("topic", topic=topic)
        observations.append(AssetObservation(asset_key=key, metadata=metadata))  # type: ignore[arg-type]
    return observations, cursor


def _summary(
    watched: Sequence[tuple[LoadedPipeline, registry.VersionRow]],
    answers: StreamAnswers,
    verdicts: dict[str, list[object]],
) -> str:
    """The tick's one line: what was observed, the largest lag, the failing checks, outages."""
    lags = {
        f"{row.pipeline} v{row.version}": sum(
            sum(answers.lags.get((row.group_id, s.topic), {}).values()) for s in p.spec.sources
        )
        for p, row in watched
    }
    worst = max(lags.items(), key=lambda item: item[1], default=None)
    lag = f", max lag {worst[1]:,} ({worst[0]})" if worst else ""
    failing = sorted(key for key, (passed, _) in verdicts.items() if not passed)
    health = f"failing: {', '.join(failing)}" if failing else "every health check passes"
    down = "".join(f"; {service} not reachable" for service in sorted(answers.outages))
    return f"observed {len(watched)} version(s){lag}, {len(answers.topics)} topic(s); {health}{down}"


def _cursor(text: str | None) -> dict[str, Any]:
    """The sensor's cursor: topics' last end offsets, the last reported health verdicts
    (`pipeline/check` -> [passed, summary]), aliases, catch-up progress and outages."""
    state = json.loads(text) if text else {}
    if "topics" not in state:  # a cursor from before the health verdicts: topics only
        state = {"topics": state, "health": {}}
    for part in ("aliases", "progress", "outages", "letters", "reads"):
        state.setdefault(part, {})
    # verdicts are kept per pipeline/check (older cursors kept one per pipeline)
    state["health"] = {k: v for k, v in state["health"].items() if "/" in k}
    return dict(state)


def verdict_changes(
    pipelines: Sequence[LoadedPipeline],
    rows: Sequence[registry.VersionRow],
    live: dict[str, int],
    answers: StreamAnswers,
    state: dict[str, Any],
    translator: KappaTranslator,
    verdicts: Mapping[str, Sequence[Verdict]] | None = None,
) -> list[AssetCheckEvaluation]:
    """The health verdicts of each pipeline with running versions that changed since the
    cursor's (`state["health"]`, updated here) or were never reported; an unobserved
    verdict is not reported. `verdicts`: observed_verdicts of this tick, when computed."""
    if verdicts is None:
        verdicts = observed_verdicts(pipelines, rows, live, answers, state["outages"])
    events = []
    for pipeline in pipelines:
        if pipeline.name in verdicts:
            events += _changed(pipeline, verdicts[pipeline.name], state["health"], translator)
    return events


def _changed(
    pipeline: LoadedPipeline,
    verdicts: Sequence[Verdict],
    reported: dict[str, Any],
    translator: KappaTranslator,
) -> list[AssetCheckEvaluation]:
    """The verdicts that differ from the last reported (`reported`, updated here)."""
    events = []
    for verdict in verdicts:
        key = f"{pipeline.name}/{verdict.check}"
        if reported.get(key) != [verdict.passed, verdict.summary]:
            events.append(verdict_evaluation(pipeline, verdict, translator))
            reported[key] = [verdict.passed, verdict.summary]
    return events


def track_outages(outages: dict[str, str], since: dict[str, int], now_ms: int) -> dict[str, int]:
    """Since when each service has not answered (a service that answers again is dropped)."""
    return {service: since.get(service, now_ms) for service in outages}


def registry_outage(
    pipelines: Sequence[LoadedPipeline], problem: str, state: dict[str, Any], translator: KappaTranslator
) -> list[AssetCheckEvaluation]:
    """While the registry cannot be read: every pipeline's checks say so (once)."""
    now = int(time.time() * 1000)
    state["outages"] = {"warehouse": state["outages"].get("warehouse", now)}
    verdicts = registry_outage_verdicts(problem, state["outages"]["warehouse"])
    return [e for pipeline in pipelines for e in _changed(pipeline, verdicts, state["health"], translator)]


OBSERVER_DESCRIPTION = (
    "Flink job state, consumer lag per partition, last checkpoint, records that arrived late and the input "
    "balance of every deployed version; offsets, retention and message rate of every source topic; dead "
    "letters by reason; the health checks of every versions asset; the alias when it changes."
)


def _read_registry(warehouse: WarehouseResource, pipelines: Sequence[LoadedPipeline]) -> tuple[Any, ...]:
    """Versions, live versions, aliases and input totals, in one registry connection."""
    with registry.session(warehouse) as conn:
        rows = registry.all_versions(conn)
        return (
            rows,
            registry.live_versions(conn),
            read_aliases(conn, pipelines, rows),
            registry.input_totals(conn),
        )


def _progress(
    services: Services,
    watched: Sequence[tuple[LoadedPipeline, registry.VersionRow]],
    answers: StreamAnswers,
    reads: dict[str, Any],
) -> dict[str, Any]:
    """What the jobs' progress says: their sources' topic ids (a log replaced under a job),
    their checkpoints recorded in the registry (a failure told to the services' log), and
    their read positions (a job whose position stands still while records wait is stuck)."""
    topics = sorted({s.topic for p, _ in watched for s in p.spec.sources})
    gather_topic_ids(topics, answers, kafka=services.kafka)
    record_checkpoints(services.warehouse, watched, answers, warn=services.log)
    return read_progress(watched, answers, reads)


def _asked(
    clients: tuple[KafkaResource, FlinkResource],
    registry_read: tuple[
        Sequence[tuple[LoadedPipeline, registry.VersionRow]],
        Sequence[registry.VersionRow],
        dict[tuple[str, int], tuple[int, int, int]],
    ],
    topics: Sequence[str],
    deadline: float,
) -> StreamAnswers:
    """What Kafka and Flink (`clients`) answer for the watched versions and the topics, by
    `deadline` (`registry_read`: the watched versions, every row, the input totals)."""
    watched, rows, inputs = registry_read
    kafka, flink = clients
    answers = gather_answers(watched, kafka=kafka, flink=flink, deadline=deadline, inputs=inputs, rows=rows)
    gather_topics(topics, answers, kafka=kafka, deadline=deadline)
    return answers


# a tick asks the services at most this long; what it could not ask is asked next tick
TIME_BUDGET_S = 20.0


def _checked(pipelines: Sequence[LoadedPipeline], minimum_interval_seconds: int) -> list[LoadedPipeline]:
    if minimum_interval_seconds < 1:
        raise ValueError("minimum_interval_seconds must be >= 1")
    return list(pipelines)


def stream_observation_sensor(
    pipelines: Sequence[LoadedPipeline],
    *,
    minimum_interval_seconds: int = 30,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
    translator: KappaTranslator = DEFAULT_TRANSLATOR,
    dagster_url: str | None = None,
) -> SensorDefinition:
    """A sensor observing every deployed version of `pipelines` (`dagster_url`: the UI, for links)."""
    pipelines = _checked(pipelines, minimum_interval_seconds)
    topics = sorted({source.topic for pipeline in pipelines for source in pipeline.spec.sources})
    letters, url = letter_topics(pipelines), dagster_url

    @sensor(
        name=STREAM_OBSERVER,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=OBSERVER_DESCRIPTION,
    )
    def _observe(
        context: SensorEvaluationContext,
        kafka: KafkaResource,
        flink: FlinkResource,
        warehouse: WarehouseResource,
        alerts: AlertResource,
    ) -> SensorResult | SkipReason:
        state = _cursor(context.cursor)
        try:
            rows, live, aliases, inputs = _read_registry(warehouse, pipelines)
        except ServiceUnavailable as exc:
            outage = registry_outage(pipelines, exc.problem, state, translator)
            context.log.warning(f"registry not reachable: {exc.problem}")
            return SensorResult(asset_events=outage, cursor=json.dumps(state))
        deadline, watched = time.monotonic() + TIME_BUDGET_S, observed_versions(pipelines, rows)
        services = Services(kafka, flink, warehouse, context.log.warning)
        answers = _asked((kafka, flink), (watched, rows, inputs), topics, deadline)
        state["reads"] = _progress(services, watched, answers, state["reads"])
        letter_events, state["letters"] = observe_letters(
            letters, state["letters"], kafka=kafka, answers=answers, deadline=deadline, translator=translator
        )
        state["outages"] = track_outages(answers.outages, state["outages"], answers.observed_at_ms)
        progress, state["progress"] = catch_up_progress(watched, answers, state["progress"])
        topic_events, state["topics"] = topic_observations(answers, state["topics"], translator)
        alias_events, state["aliases"] = alias_observations(
            pipelines, aliases, state["aliases"], translator, url
        )
        failed = [r for r in rows if r.state == registry.FAILED]
        versions = stream_observations(
            watched, answers, live, translator, progress, flink.job_url, inputs, failed
        )
        verdicts = observed_verdicts(pipelines, rows, live, answers, state["outages"], instance_of(context))
        checks = verdict_changes(pipelines, rows, live, answers, state, translator, verdicts)
        alert_health(warehouse, alerts, health_findings(verdicts), context.log.info)
        events = [*topic_events, *letter_events, *versions, *checks, *alias_events]
        if not events:
            return SkipReason("no deployed versions or topics to observe yet")
        context.log.info(_summary(watched, answers, state["health"]))
        return SensorResult(asset_events=events, cursor=json.dumps(state))

    return _observe
