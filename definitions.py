"""Root of the reference deployment: merges assets, sensors and resources, nothing else."""

from __future__ import annotations

from dagster import Definitions

from assets import SPECS_DIR
from kappa_orch import load_pipelines, pipeline_assets
from resources import build_resources
from sensors import build_schedules, build_sensors

PIPELINES = load_pipelines(SPECS_DIR)

defs = Definitions(
    assets=pipeline_assets(PIPELINES),
    sensors=build_sensors(PIPELINES),
    schedules=build_schedules(PIPELINES),
    resources=build_resources(),
)
