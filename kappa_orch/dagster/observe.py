"""The stream observation sensor: what each deployed version's job and consumer group
are doing, reported as asset observations with numeric metadata so the UI plots them.

It observes only: no offset commits, no restarts, no registry writes. The decision
(which observations, with what metadata) is a pure function of recorded answers.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from dagster import (
    AssetObservation,
    DefaultSensorStatus,
    MetadataValue,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from kappa_orch import registry
from kappa_orch.dagster.assets import version_key
from kappa_orch.errors import KappaError
from kappa_orch.resources.flink import Checkpoint, FlinkResource
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.model import LoadedPipeline

_TROUBLED = frozenset({"FAILED", "FAILING", "RESTARTING"})


@dataclass(frozen=True)
class StreamAnswers:
    """What Flink and Kafka said about the deployed versions at one moment."""

    observed_at_ms: int
    job_states: dict[str, str] = field(default_factory=dict)
    job_exceptions: dict[str, str] = field(default_factory=dict)
    checkpoints: dict[str, Checkpoint | None] = field(default_factory=dict)
    lags: dict[tuple[str, str], dict[int, int]] = field(default_factory=dict)


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


def stream_observations(
    watched: Sequence[tuple[LoadedPipeline, registry.VersionRow]],
    answers: StreamAnswers,
    live: dict[str, int],
) -> list[AssetObservation]:
    """One observation per watched version (pure)."""
    observations = []
    for pipeline, row in watched:
        job_id = row.flink_job_id or ""
        metadata: dict[str, object] = {
            "version": row.version,
            "state": row.state,
            "live": live.get(row.pipeline) == row.version,
            "flink_job_id": job_id,
            "job_state": answers.job_states.get(job_id, "UNKNOWN"),
        }
        total = 0
        for source in pipeline.spec.sources:
            per_partition = answers.lags.get((row.group_id, source.topic))
            if per_partition is None:
                continue
            for partition, lag in sorted(per_partition.items()):
                metadata[f"lag/{source.topic}/{partition}"] = lag
                total += lag
        metadata["lag_total"] = total
        checkpoint = answers.checkpoints.get(job_id)
        if checkpoint is not None:
            metadata["checkpoint_id"] = checkpoint.checkpoint_id
            metadata["checkpoint_age_s"] = round(
                max(0, answers.observed_at_ms - checkpoint.completed_at_ms) / 1000, 1
            )
        exception = answers.job_exceptions.get(job_id)
        if exception:
            metadata["flink_exception"] = MetadataValue.text(exception[:5000])
        observations.append(AssetObservation(asset_key=version_key(pipeline.spec), metadata=metadata))  # type: ignore[arg-type]
    return observations


def gather_answers(
    watched: Sequence[tuple[LoadedPipeline, registry.VersionRow]],
    *,
    kafka: KafkaResource,
    flink: FlinkResource,
    deadline: float,
) -> StreamAnswers:
    """Ask Flink and Kafka about each watched version, until the deadline (monotonic)."""
    answers = StreamAnswers(observed_at_ms=int(time.time() * 1000))
    for pipeline, row in watched:
        if time.monotonic() > deadline:
            break
        job_id = row.flink_job_id or ""
        state = flink.job_state(job_id)
        answers.job_states[job_id] = state
        if state in _TROUBLED:
            answers.job_exceptions[job_id] = flink.job_exception(job_id) or ""
        if state != "UNKNOWN":
            answers.checkpoints[job_id] = flink.last_checkpoint(job_id)
        for source in pipeline.spec.sources:
            answers.lags[(row.group_id, source.topic)] = kafka.consumer_lag(row.group_id, source.topic)
    return answers


def stream_observation_sensor(
    pipelines: Sequence[LoadedPipeline],
    *,
    name: str = "kappa_stream_observer",
    minimum_interval_seconds: int = 30,
    time_budget_s: float = 20.0,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
) -> SensorDefinition:
    """A sensor that observes every deployed version of the given pipelines."""
    if minimum_interval_seconds < 1 or time_budget_s <= 0:
        raise ValueError("minimum_interval_seconds must be >= 1 and time_budget_s > 0")
    pipelines = list(pipelines)

    @sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=(
            "Flink job state, consumer lag per partition and last checkpoint of every deployed version."
        ),
    )
    def _observe(
        context: SensorEvaluationContext,
        kafka: KafkaResource,
        flink: FlinkResource,
        warehouse: WarehouseResource,
    ) -> SensorResult | SkipReason:
        try:
            with warehouse.begin() as conn:
                registry.migrate(conn)
                rows = registry.all_versions(conn)
                live = registry.live_versions(conn)
        except KappaError as exc:
            return SkipReason(f"registry not reachable: {exc.problem}")
        watched = observed_versions(pipelines, rows)
        if not watched:
            return SkipReason("no deployed versions to observe")
        answers = gather_answers(watched, kafka=kafka, flink=flink, deadline=time.monotonic() + time_budget_s)
        return SensorResult(asset_events=stream_observations(watched, answers, live))

    return _observe
