"""Root of the reference deployment: merges assets, sensors and resources, nothing else."""

from __future__ import annotations

from dagster import Definitions

from resources import build_resources
from sensors import SCHEDULES, SENSORS

defs = Definitions(
    sensors=SENSORS,
    schedules=SCHEDULES,
    resources=build_resources(),
)
