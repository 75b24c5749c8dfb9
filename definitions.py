"""Root of the reference deployment: merges assets, sensors, jobs and resources, nothing else."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import Definitions

from assets import SPECS_DIR
from kappa_orch import data_quality_checks, job_health_checks, load_pipelines, pipeline_assets
from resources import build_resources, data_quality_cron, git_commit
from sensors import build_jobs, build_schedules, build_sensors

# the specs folder: KAPPA_SPECS (as for the CLI), else the reference specs
PIPELINES = load_pipelines(Path(os.environ.get("KAPPA_SPECS") or SPECS_DIR))

defs = Definitions(
    assets=pipeline_assets(PIPELINES, git_commit=git_commit()),
    asset_checks=[*data_quality_checks(PIPELINES), *job_health_checks(PIPELINES)],
    sensors=build_sensors(PIPELINES),
    jobs=build_jobs(PIPELINES),
    schedules=build_schedules(PIPELINES, data_quality_cron=data_quality_cron()),
    resources=build_resources(),
)
