"""The reference deployment's sensors, schedules and the jobs they request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dagster import ScheduleDefinition, SensorDefinition

from kappa_orch import (
    LoadedPipeline,
    data_quality_schedule,
    failed_day_sensor,
    late_data_sensor,
    repair_job,
    repair_sensor,
    reprocess_job,
    reprocess_sensor,
    retire_job,
    retire_sensor,
    stream_observation_sensor,
)


def build_sensors(pipelines: Sequence[LoadedPipeline]) -> list[SensorDefinition]:
    return [
        stream_observation_sensor(pipelines, minimum_interval_seconds=30),
        reprocess_sensor(pipelines, minimum_interval_seconds=30),
        repair_sensor(pipelines, minimum_interval_seconds=30),
        retire_sensor(pipelines, minimum_interval_seconds=300),
        late_data_sensor(pipelines, minimum_interval_seconds=60),
        failed_day_sensor(pipelines, minimum_interval_seconds=60),
    ]


def build_jobs(pipelines: Sequence[LoadedPipeline]) -> list[Any]:
    return [reprocess_job(pipelines), retire_job(pipelines), repair_job(pipelines)]


def build_schedules(
    pipelines: Sequence[LoadedPipeline], *, data_quality_cron: str
) -> list[ScheduleDefinition]:
    return [data_quality_schedule(pipelines, cron_schedule=data_quality_cron)]
