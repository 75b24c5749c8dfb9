"""The reference deployment's sensors and schedules."""

from __future__ import annotations

from collections.abc import Sequence

from dagster import ScheduleDefinition, SensorDefinition

from kappa_orch import LoadedPipeline, stream_observation_sensor


def build_sensors(pipelines: Sequence[LoadedPipeline]) -> list[SensorDefinition]:
    return [stream_observation_sensor(pipelines, minimum_interval_seconds=30)]


def build_schedules(pipelines: Sequence[LoadedPipeline]) -> list[ScheduleDefinition]:
    return []
