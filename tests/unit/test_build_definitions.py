"""`build_kappa_definitions`, the `KappaTranslator` and the `dg` component: one entry
point, keys decided in one place, bad input refused at load."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, AssetSpec, Definitions
from dagster.components.testing import create_defs_folder_sandbox

from kappa_orch import (
    AutomationSettings,
    KappaAsset,
    KappaPipelinesComponent,
    KappaTranslator,
    PlatformConfig,
    build_kappa_definitions,
)
from kappa_orch.errors import SpecError
from kappa_orch.spec.model import PipelineSpec

ROOT = Path(__file__).resolve().parents[2]
CONFIG = PlatformConfig()  # the local stack's defaults: nothing is contacted at load


def _specs(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        for suffix in (".yaml", ".sql"):
            shutil.copy(ROOT / "assets" / f"{name}{suffix}", folder / f"{name}{suffix}")
    return folder


def _keys(defs: Definitions) -> set[str]:
    return {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}


@pytest.mark.slow
def test_a_new_users_definitions_file_is_one_import_and_one_call(tmp_path: Path) -> None:
    _specs(tmp_path / "specs", "daily_spend", "account_latest")
    (tmp_path / "definitions.py").write_text(
        'from kappa_orch import build_kappa_definitions\n\ndefs = build_kappa_definitions("specs")\n'
    )
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-f", "definitions.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("KAPPA_")},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_everything_a_deployment_needs_comes_from_one_call(tmp_path: Path) -> None:
    defs = build_kappa_definitions(_specs(tmp_path, "daily_spend"), config=CONFIG)
    Definitions.validate_loadable(defs)
    assert set(defs.resources or {}) == {"kafka", "flink", "warehouse", "openlineage", "alerts"}
    assert {s.name for s in defs.sensors or []} >= {"kappa_reprocess_sensor", "kappa_repair_sensor"}
    assert {j.name for j in defs.resolve_all_job_defs()} >= {
        "kappa_reprocess",
        "kappa_retire",
        "kappa_repair",
    }
    assert [s.name for s in defs.schedules or []] == ["kappa_data_quality_schedule"]
    # found: each scheduled check ran in its own subprocess (11 minutes for 7 checks)
    assert defs.resolve_job_def("kappa_data_quality").executor_def.name == "in_process"
    # the health checks sit on the versions asset, executable from the UI
    checks = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert {"flink_job_running", "lag_within_bounds", "checkpoint_fresh"} <= checks
    assert "late_records_within_bounds" in checks


def test_a_sensor_brings_the_job_it_requests() -> None:
    # found: the reprocess sensor named its job by a string: a Definitions with the sensor
    # and without the job failed at load
    from kappa_orch import load_pipelines, reprocess_sensor

    pipelines = load_pipelines(ROOT / "assets")
    defs = Definitions(
        assets=build_kappa_definitions(pipelines, config=CONFIG).assets,
        sensors=[reprocess_sensor(pipelines)],
        resources=CONFIG.resources(),
    )
    Definitions.validate_loadable(defs)
    assert "kappa_reprocess" in {j.name for j in defs.resolve_all_job_defs()}


class ServingTranslator(KappaTranslator):
    def alias_key(self, spec: PipelineSpec) -> AssetKey:
        return AssetKey(["serving", spec.target.table_name])

    def group_name(self, spec: PipelineSpec) -> str:
        return "payments"

    def owners(self, spec: PipelineSpec) -> list[str]:
        return ["team:platform"]


def test_a_translator_decides_keys_groups_and_owners_everywhere(tmp_path: Path) -> None:
    defs = build_kappa_definitions(
        _specs(tmp_path, "daily_spend"), config=CONFIG, translator=ServingTranslator()
    )
    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert "serving/daily_spend" in _keys(defs) and "analytics/daily_spend" not in _keys(defs)
    node = graph.get(AssetKey(["serving", "daily_spend"]))
    assert node.group_name == "payments" and list(node.owners) == ["team:platform"]
    # the checks and the reprocess job follow the translator's keys
    checked = {k.asset_key.to_user_string() for k in graph.asset_check_keys}
    assert "serving/daily_spend" in checked and "analytics/daily_spend" not in checked
    job = defs.resolve_job_def("kappa_reprocess")
    assert AssetKey(["serving", "daily_spend"]) in job.asset_layer.selected_asset_keys


class SpecTranslator(KappaTranslator):
    def get_asset_spec(self, asset: KappaAsset) -> AssetSpec:
        default = super().get_asset_spec(asset)
        if asset.role == "alias":
            assert asset.spec is not None
            return default.replace_attributes(
                key=AssetKey(["serving", asset.spec.target.table_name]),
                kinds={"postgres", "serving"},
                metadata={"tier": "gold"},
            )
        return default


def test_one_get_asset_spec_decides_an_asset_everywhere(tmp_path: Path) -> None:
    defs = build_kappa_definitions(
        _specs(tmp_path, "daily_spend"), config=CONFIG, translator=SpecTranslator()
    )
    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    node = graph.get(AssetKey(["serving", "daily_spend"]))
    assert "analytics/daily_spend" not in _keys(defs)
    assert node.kinds == {"postgres", "serving"} and node.metadata["tier"] == "gold"
    assert node.metadata["alias"] == "analytics.daily_spend"  # kappa_orch's own metadata stays
    checked = {k.asset_key.to_user_string() for k in graph.asset_check_keys}
    assert "serving/daily_spend" in checked
    job = defs.resolve_job_def("kappa_reprocess")
    assert AssetKey(["serving", "daily_spend"]) in job.asset_layer.selected_asset_keys


def test_a_translator_that_gives_two_assets_one_key_is_refused(tmp_path: Path) -> None:
    class Colliding(KappaTranslator):
        def alias_key(self, spec: PipelineSpec) -> AssetKey:
            return AssetKey(["analytics", "everything"])

    with pytest.raises(SpecError) as raised:
        build_kappa_definitions(
            _specs(tmp_path, "daily_spend", "account_latest"), config=CONFIG, translator=Colliding()
        )
    message = str(raised.value)
    assert "Colliding gives" in message and "analytics/everything" in message
    assert "account_latest's alias" in message and "daily_spend's alias" in message


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda tmp: tmp / "nowhere", "does not exist"),
        (lambda tmp: tmp, "holds no pipeline spec"),
    ],
)
def test_a_missing_or_empty_specs_folder_is_refused(tmp_path: Path, make: Any, expected: str) -> None:
    with pytest.raises(SpecError, match=expected):
        build_kappa_definitions(make(tmp_path), config=CONFIG)


def test_the_component_scaffolds_an_example_and_builds_its_definitions() -> None:
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(component_cls=KappaPipelinesComponent, defs_path="pipelines")
        assert (path / "specs" / "example_pipeline.yaml").is_file()
        with sandbox.load_component_and_build_defs(defs_path=path) as (component, defs):
            assert isinstance(component, KappaPipelinesComponent)
            assert "analytics/example_latest" in _keys(defs)
            assert {"kappa_reprocess_sensor", "kappa_stream_observer"} <= {s.name for s in defs.sensors or []}


def test_the_components_automation_is_typed_and_documented() -> None:
    from dagster import DefaultSensorStatus

    from kappa_orch.dagster.component import AutomationAttributes

    fields = AutomationAttributes.model_fields
    assert all(f.description for f in fields.values())
    assert fields["stopped_sensors"].annotation == list[str] | None
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(component_cls=KappaPipelinesComponent, defs_path="pipelines")
        (path / "defs.yaml").write_text(
            "type: kappa_orch.KappaPipelinesComponent\nattributes:\n"
            "  automation: {retire_interval_s: 600, stopped_sensors: [kappa_reprocess_sensor]}\n"
        )
        with sandbox.load_component_and_build_defs(defs_path=path) as (_, defs):
            statuses = {s.name: s.default_status for s in defs.sensors or []}
    assert statuses["kappa_reprocess_sensor"] == DefaultSensorStatus.STOPPED
    assert statuses["kappa_repair_sensor"] == DefaultSensorStatus.RUNNING  # stopped_sensors given: only it


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ("  spec_dir: specs\n", "spec_dir"),
        ("  automation: {retire_interval: 5}\n", "retire_interval"),
        ("  specs_dir: missing\n", "does not exist"),
    ],
)
def test_a_component_yaml_with_a_wrong_field_is_refused_at_load(attributes: str, expected: str) -> None:
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(component_cls=KappaPipelinesComponent, defs_path="pipelines")
        (path / "defs.yaml").write_text(
            f"type: kappa_orch.KappaPipelinesComponent\nattributes:\n{attributes}"
        )
        with pytest.raises(Exception) as raised:  # noqa: SIM117  # Dagster wraps the cause
            with sandbox.load_component_and_build_defs(defs_path=path):
                pass
        chain, error = [], raised.value
        while error is not None:
            chain.append(str(error))
            error = error.__cause__ or error.__context__  # type: ignore[assignment]
        assert any(expected in text for text in chain), chain


def test_sensors_ask_only_for_the_resources_they_use() -> None:
    # found: the reprocess and retire sensors asked for `flink` (they never use it): a sensor
    # evaluated with only the warehouse failed
    from dagster import SkipReason, build_sensor_context

    from kappa_orch import WarehouseResource, load_pipelines, reprocess_sensor, retire_sensor

    pipelines = load_pipelines(ROOT / "assets")
    nowhere = WarehouseResource(url="postgresql+psycopg2://u:p@127.0.0.1:1/w", connect_timeout_s=1)
    for make in (reprocess_sensor, retire_sensor):
        with build_sensor_context(resources={"warehouse": nowhere}) as context:
            result = make(pipelines)(context)
        # the registry does not answer: a skipped tick that says so, not an error
        assert isinstance(result, SkipReason) and "not reachable" in (result.skip_message or "")


def test_dg_finds_the_component_and_its_scaffolder() -> None:
    # the package's `dagster_dg_cli.registry_modules` entry point: `dg list components`
    # shows it and `dg scaffold defs kappa_orch.KappaPipelinesComponent <path>` uses its scaffolder
    from dagster.components.core.package_entry import discover_entry_point_package_objects
    from dagster.components.scaffold.scaffold import has_scaffolder

    found = {key.to_typename(): obj for key, obj in discover_entry_point_package_objects().items()}
    assert found["kappa_orch.KappaPipelinesComponent"] is KappaPipelinesComponent
    assert has_scaffolder(KappaPipelinesComponent)


def test_the_data_quality_schedule_runs_from_the_start(tmp_path: Path) -> None:
    # found: kappa_data_quality_schedule shipped STOPPED while the docs said hourly
    from dagster import DefaultScheduleStatus

    from kappa_orch import AutomationSettings

    specs = _specs(tmp_path, "daily_spend")
    [schedule] = build_kappa_definitions(specs, config=CONFIG).schedules or []
    assert schedule.default_status == DefaultScheduleStatus.RUNNING  # type: ignore[union-attr]
    off = AutomationSettings(data_quality_running=False)
    [stopped] = build_kappa_definitions(specs, config=CONFIG, automation=off).schedules or []
    assert stopped.default_status == DefaultScheduleStatus.STOPPED  # type: ignore[union-attr]


def test_sensors_can_start_stopped_and_an_unknown_name_is_refused(tmp_path: Path) -> None:
    from dagster import DefaultSensorStatus

    automation = AutomationSettings(stopped_sensors=["kappa_repair_sensor"])
    defs = build_kappa_definitions(_specs(tmp_path, "daily_spend"), config=CONFIG, automation=automation)
    statuses = {s.name: s.default_status for s in defs.sensors or []}
    assert statuses["kappa_repair_sensor"] == DefaultSensorStatus.STOPPED
    assert statuses["kappa_stream_observer"] == DefaultSensorStatus.RUNNING
    with pytest.raises(ValueError, match=r"unknown sensor.*kappa_repiar"):
        AutomationSettings(stopped_sensors=["kappa_repiar_sensor"])


def test_sensors_that_act_without_a_person_start_stopped_unless_turned_on(tmp_path: Path) -> None:
    from dagster import DefaultSensorStatus

    from sensors import AUTOMATION

    specs = _specs(tmp_path, "daily_spend")
    library = {s.name: s.default_status for s in build_kappa_definitions(specs, config=CONFIG).sensors or []}
    acting = {"kappa_repair_sensor", "kappa_retire_sensor"}
    assert {n for n, s in library.items() if s == DefaultSensorStatus.STOPPED} == acting
    reference = build_kappa_definitions(specs, config=CONFIG, automation=AUTOMATION).sensors or []
    assert {s.default_status for s in reference} == {DefaultSensorStatus.RUNNING}
