"""One call from a folder of specs to complete Dagster definitions.

    from kappa_orch import build_kappa_definitions

    defs = build_kappa_definitions("specs")

Assets (topics, versioned tables, aliases, batch tables), their checks, the sensors
with the jobs they request, the data-quality schedule and the resources, all named by
one `KappaTranslator`. Everything is checked before anything is returned: a folder that
is missing or empty, a spec with a problem or a translator that gives two assets one key
is an error naming what and where, never a half-built `Definitions`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dagster import DefaultScheduleStatus, DefaultSensorStatus, Definitions
from pydantic import BaseModel, ConfigDict, Field, field_validator

from kappa_orch.config import PlatformConfig
from kappa_orch.dagster.assets import pipeline_assets
from kappa_orch.dagster.automation import (
    repair_job,
    repair_sensor,
    reprocess_job,
    reprocess_sensor,
    retire_job,
    retire_sensor,
)
from kappa_orch.dagster.backfill import failed_day_sensor, late_data_sensor
from kappa_orch.dagster.names import (
    ACTING_SENSORS,
    FAILED_DAY_SENSOR,
    LATE_DATA_SENSOR,
    PLATFORM_PAGE,
    REPAIR_SENSOR,
    REPROCESS_SENSOR,
    RETIRE_SENSOR,
    SENSOR_NAMES,
    STREAM_OBSERVER,
)
from kappa_orch.dagster.observe import stream_observation_sensor
from kappa_orch.dagster.platform_page import platform_asset, platform_page_sensor
from kappa_orch.dagster.quality import data_quality_checks, data_quality_schedule
from kappa_orch.dagster.stream_checks import health_checks
from kappa_orch.dagster.translator import DEFAULT_TRANSLATOR, KappaTranslator
from kappa_orch.engine.flink.policy import OBSERVE_INTERVAL_S
from kappa_orch.errors import SpecError
from kappa_orch.spec.model import LoadedPipeline


class AutomationSettings(BaseModel):
    """How often each sensor ticks, and whether sensors start running when deployed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # the Flink policy's retained checkpoints are sized for this interval (flink_policy)
    observe_interval_s: int = Field(
        OBSERVE_INTERVAL_S, ge=1, description="Stream observations and job health."
    )
    reprocess_interval_s: int = Field(30, ge=1, description="Fingerprints that are not live.")
    repair_interval_s: int = Field(30, ge=1, description="Live or ready versions whose job is gone.")
    retire_interval_s: int = Field(300, ge=1, description="Replaced versions past their grace period.")
    late_data_interval_s: int = Field(60, ge=1, description="Late records for computed batch days.")
    failed_day_interval_s: int = Field(60, ge=1, description="Batch days that failed a check.")
    platform_page_interval_s: int = Field(60, ge=1, description="The platform page (kappa/platform).")
    claim_wait_s: float = Field(600.0, ge=0, description="How long a reprocess waits for another one.")
    claim_stale_s: float = Field(60.0, gt=0, description="When a silent claim may be taken over.")
    data_quality_running: bool = Field(True, description="The data-quality schedule runs from the start.")
    stopped_sensors: list[str] = Field(
        list(ACTING_SENSORS),
        description="Sensors that start stopped (turned on from the UI or here). By default the two that "
        "act without a person: kappa_repair_sensor (redeploys lost jobs) and kappa_retire_sensor (drops "
        "replaced versions' tables); a deployment that wants them turns them on (stopped_sensors=[]).",
    )

    @field_validator("stopped_sensors")
    @classmethod
    def _known_sensors(cls, names: list[str]) -> list[str]:
        unknown = sorted(set(names) - set(SENSOR_NAMES))
        if unknown:
            raise ValueError(
                f"unknown sensor(s) {', '.join(unknown)}; the sensors are {', '.join(SENSOR_NAMES)}"
            )
        return names

    def status(self, sensor_name: str) -> DefaultSensorStatus:
        """How the sensor starts when deployed."""
        return (
            DefaultSensorStatus.STOPPED
            if sensor_name in self.stopped_sensors
            else DefaultSensorStatus.RUNNING
        )


def build_kappa_definitions(
    specs: str | Path | Sequence[LoadedPipeline],
    *,
    translator: KappaTranslator | None = None,
    config: PlatformConfig | None = None,
    automation: AutomationSettings | None = None,
    resources: Mapping[str, Any] | None = None,
) -> Definitions:
    """Complete `Definitions` for a folder of pipeline specs (or pipelines already loaded).

    `config` says where Kafka, Flink and the warehouse are (default: KAPPA_* variables over
    the local stack's defaults, as the CLI reads them; its `openlineage` setting becomes
    the `openlineage` resource); `resources` replaces the resources it would build;
    `translator` names the assets; `automation` sets the sensors' intervals."""
    translator = translator or DEFAULT_TRANSLATOR
    config = config or PlatformConfig.from_env(os.environ)
    automation = automation or AutomationSettings()
    pipelines = _pipelines(specs)
    check_keys(pipelines, translator)
    jobs = {
        "reprocess": reprocess_job(pipelines, translator=translator),
        "retire": retire_job(pipelines),
        "repair": repair_job(pipelines, config.commit()),
    }
    return Definitions(
        assets=[
            *pipeline_assets(
                pipelines,
                translator=translator,
                git_commit=config.commit(),
                claim_wait_s=automation.claim_wait_s,
                claim_stale_s=automation.claim_stale_s,
                dagster_url=config.dagster_url,
            ),
            platform_asset(),
        ],
        asset_checks=[
            *data_quality_checks(pipelines, translator),
            *health_checks(pipelines, translator),
        ],
        sensors=_sensors(pipelines, translator, automation, jobs, config.dagster_url),
        jobs=list(jobs.values()),
        schedules=[
            data_quality_schedule(
                pipelines,
                cron_schedule=config.data_quality_cron,
                translator=translator,
                default_status=DefaultScheduleStatus.RUNNING
                if automation.data_quality_running
                else DefaultScheduleStatus.STOPPED,
            )
        ],
        resources=_resources(config, resources),
    )


def _sensors(
    pipelines: Sequence[LoadedPipeline],
    translator: KappaTranslator,
    automation: AutomationSettings,
    jobs: Mapping[str, Any],
    dagster_url: str,
) -> list[Any]:
    return [
        stream_observation_sensor(
            pipelines,
            minimum_interval_seconds=automation.observe_interval_s,
            translator=translator,
            dagster_url=dagster_url,
            default_status=automation.status(STREAM_OBSERVER),
        ),
        reprocess_sensor(
            pipelines,
            minimum_interval_seconds=automation.reprocess_interval_s,
            translator=translator,
            job=jobs["reprocess"],
            default_status=automation.status(REPROCESS_SENSOR),
        ),
        repair_sensor(
            pipelines,
            minimum_interval_seconds=automation.repair_interval_s,
            job=jobs["repair"],
            default_status=automation.status(REPAIR_SENSOR),
        ),
        retire_sensor(
            pipelines,
            minimum_interval_seconds=automation.retire_interval_s,
            job=jobs["retire"],
            default_status=automation.status(RETIRE_SENSOR),
        ),
        late_data_sensor(
            pipelines,
            minimum_interval_seconds=automation.late_data_interval_s,
            translator=translator,
            default_status=automation.status(LATE_DATA_SENSOR),
        ),
        failed_day_sensor(
            pipelines,
            minimum_interval_seconds=automation.failed_day_interval_s,
            translator=translator,
            default_status=automation.status(FAILED_DAY_SENSOR),
        ),
        platform_page_sensor(
            pipelines,
            minimum_interval_seconds=automation.platform_page_interval_s,
            default_status=automation.status(PLATFORM_PAGE),
        ),
    ]


def _resources(config: PlatformConfig, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The resources the definitions run with: those given (the deployment's openlineage
    and alerts resources unless given too), else the deployment's own."""
    own = config.resources(dagster=True)
    return {"openlineage": own["openlineage"], "alerts": own["alerts"], **given} if given is not None else own


def _pipelines(specs: str | Path | Sequence[LoadedPipeline]) -> list[LoadedPipeline]:
    """The pipelines of a specs folder: it must exist and hold at least one spec."""
    from kappa_orch.spec.load import load_pipelines

    if not isinstance(specs, str | Path):
        return list(specs)
    folder = Path(specs)
    if not folder.is_dir():
        raise SpecError(
            f"the specs folder {folder} does not exist (looked in {folder.resolve()})",
            "pass the folder of your pipeline specs (YAML + SQL), or set KAPPA_SPECS",
        )
    pipelines = load_pipelines(folder)
    if not pipelines:
        raise SpecError(
            f"the specs folder {folder} holds no pipeline spec (*.yaml, *.yml)",
            "add a spec (see docs/spec-reference.md) or point to the folder that has them",
        )
    return pipelines


def check_keys(pipelines: Sequence[LoadedPipeline], translator: KappaTranslator) -> None:
    """Refuse a translator that gives two assets the same key (Dagster would fail later,
    naming neither the pipelines nor the translator)."""
    owners: dict[Any, str] = {}
    topics = sorted({s.topic for p in pipelines for s in p.spec.sources})
    named = [(translator.key("topic", topic=t), f"topic {t}") for t in topics]
    for p in pipelines:
        named += [
            (translator.key("versions", p.spec), f"{p.name}'s versioned table ({p.path})"),
            (translator.key("alias", p.spec), f"{p.name}'s alias ({p.path})"),
        ]
        if p.spec.batch is not None:
            named.append((translator.key("batch", p.spec), f"{p.name}'s batch table ({p.path})"))
    for key, what in named:
        if key in owners:
            raise SpecError(
                f"{type(translator).__name__} gives {what} and {owners[key]} the same asset key "
                f"{key.to_user_string()}",
                "make the translator's key methods return a distinct key for each asset",
            )
        owners[key] = what
