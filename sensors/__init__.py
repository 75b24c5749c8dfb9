"""The reference deployment's sensors and schedules (stream observation, reprocess,
backfill and data-quality schedules arrive with the pipeline specs)."""

from __future__ import annotations

from dagster import ScheduleDefinition, SensorDefinition

SENSORS: list[SensorDefinition] = []
SCHEDULES: list[ScheduleDefinition] = []
