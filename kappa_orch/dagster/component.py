"""kappa_orch as a `dg` component: a `defs.yaml` that names a folder of pipeline specs.

    type: kappa_orch.KappaPipelinesComponent
    attributes:
      specs_dir: specs              # relative to this defs.yaml
      kafka_bootstrap: 127.0.0.1:9092
      automation: {retire_interval_s: 600, stopped_sensors: []}

Settings left out come from KAPPA_* variables, then the local stack's defaults; secrets
(the warehouse URLs) only ever from variables, never from the YAML.
`dg scaffold defs kappa_orch.KappaPipelinesComponent <path>` writes a `defs.yaml` and an
example spec to start from.
"""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path

from dagster import Definitions
from dagster.components import Component, ComponentLoadContext, Model, Resolvable, Scaffolder, ScaffoldRequest
from dagster.components import scaffold_with as _scaffold_with
from dagster.components.component_scaffolding import scaffold_component
from pydantic import ConfigDict, Field, ValidationError

from kappa_orch.config import PlatformConfig
from kappa_orch.dagster.definitions import AutomationSettings, build_kappa_definitions
from kappa_orch.errors import SpecError


def _about(field: str) -> str:
    return AutomationSettings.model_fields[field].description or ""


class AutomationAttributes(Model):
    """`attributes.automation`: how often each sensor ticks, which start stopped, and the
    claim timeouts (the fields of `AutomationSettings`; one left out keeps its default)."""

    model_config = ConfigDict(extra="forbid")

    observe_interval_s: int | None = Field(None, description=_about("observe_interval_s"))
    reprocess_interval_s: int | None = Field(None, description=_about("reprocess_interval_s"))
    repair_interval_s: int | None = Field(None, description=_about("repair_interval_s"))
    retire_interval_s: int | None = Field(None, description=_about("retire_interval_s"))
    late_data_interval_s: int | None = Field(None, description=_about("late_data_interval_s"))
    failed_day_interval_s: int | None = Field(None, description=_about("failed_day_interval_s"))
    claim_wait_s: float | None = Field(None, description=_about("claim_wait_s"))
    claim_stale_s: float | None = Field(None, description=_about("claim_stale_s"))
    data_quality_running: bool | None = Field(None, description=_about("data_quality_running"))
    stopped_sensors: list[str] | None = Field(None, description=_about("stopped_sensors"))


class KappaPipelinesScaffolder(Scaffolder):
    """Writes `defs.yaml` and `specs/` with one example pipeline spec (YAML + SQL)."""

    def scaffold(self, request: ScaffoldRequest) -> None:
        folder = Path(request.target_path)
        specs = folder / "specs"
        specs.mkdir(parents=True, exist_ok=True)
        templates = resources.files("kappa_orch.dagster") / "templates"
        for name in ("example_pipeline.yaml", "example_pipeline.sql"):
            with resources.as_file(templates / name) as source:
                shutil.copy(source, specs / name)
        scaffold_component(request, {"specs_dir": "specs"})


@_scaffold_with(KappaPipelinesScaffolder)
class KappaPipelinesComponent(Component, Resolvable, Model):
    """Every pipeline spec of a folder as Dagster assets, checks, sensors, jobs and the
    data-quality schedule, with their resources (see `build_kappa_definitions`)."""

    model_config = ConfigDict(extra="forbid")

    specs_dir: str = Field("specs", description="The folder of pipeline specs, relative to this defs.yaml.")
    kafka_bootstrap: str | None = Field(None, description="Kafka bootstrap servers [KAPPA_KAFKA_BOOTSTRAP].")
    flink_rest_url: str | None = Field(None, description="Flink REST endpoint [KAPPA_FLINK_REST_URL].")
    sql_gateway_url: str | None = Field(
        None, description="Flink SQL Gateway endpoint [KAPPA_SQL_GATEWAY_URL]."
    )
    data_quality_cron: str | None = Field(
        None, description="Cron of the data-quality schedule [KAPPA_DATA_QUALITY_CRON; hourly]."
    )
    automation: AutomationAttributes | None = Field(
        None, description="Sensor intervals, sensors that start stopped, claim timeouts."
    )

    def build_defs(self, context: ComponentLoadContext) -> Definitions:
        """The definitions of the specs folder, with the YAML's settings over KAPPA_* variables."""
        specs = Path(self.specs_dir)
        if not specs.is_absolute():
            specs = Path(context.path) / specs
        flags = {
            "specs": specs,
            "kafka_bootstrap": self.kafka_bootstrap,
            "flink_rest_url": self.flink_rest_url,
            "sql_gateway_url": self.sql_gateway_url,
            "data_quality_cron": self.data_quality_cron,
        }
        config = PlatformConfig.from_env(os.environ, flags=flags)
        try:
            given = self.automation.model_dump(exclude_none=True) if self.automation else {}
            automation = AutomationSettings(**given)
        except ValidationError as exc:
            where = Path(context.path) / "defs.yaml"
            raise SpecError(
                f"{where}: attributes.automation is wrong: {_first_problem(exc)}",
                f"use only {', '.join(AutomationSettings.model_fields)} with numbers in range",
            ) from None
        return build_kappa_definitions(config.specs, config=config, automation=automation)


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
