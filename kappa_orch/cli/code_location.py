"""The deployment's own code location, loaded as `dagster -f <file>` loads it: a Python
file with one module-level `Definitions`. A reprocess the CLI runs in the foreground
then uses that code location's assets (its translator's keys, groups and metadata) and
resources, instead of rebuilding kappa_orch's defaults from the specs folder."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Any

from kappa_orch.errors import OperationRefused


def load_definitions(path: Path) -> Any:
    """The one `Definitions` object a code location file defines at module level."""
    from dagster import Definitions

    if not path.is_file():
        raise OperationRefused(
            f"there is no code location file {path}",
            "pass the Python file your Dagster code location loads (`--definitions definitions.py`), "
            "or leave it out to use kappa_orch's defaults for the specs folder",
        )
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # its own packages (resources/, sensors/) import as `dagster -f` finds them
    try:
        namespace = runpy.run_path(str(path), run_name="__kappa_code_location__")
    finally:
        sys.path.remove(folder)
    found = [value for value in namespace.values() if isinstance(value, Definitions)]
    if len(found) != 1:
        raise OperationRefused(
            f"{path} defines {len(found)} Definitions objects at module level; the CLI needs exactly one",
            "keep one `defs = build_kappa_definitions(...)` in the file (as `dagster -f` expects)",
        )
    return found[0]


def reprocess_selection(defs: Any, pipeline: str, path: Path) -> tuple[list[Any], str]:
    """The keys of a pipeline's versions and alias assets in the code location (versions
    first) and the name of the versions asset's op (its run config carries --accept)."""
    from kappa_orch.dagster.automation import REPROCESS_JOB

    if REPROCESS_JOB not in {job.name for job in defs.resolve_all_job_defs()}:
        raise OperationRefused(
            f"{path} has no job {REPROCESS_JOB}: it is not a kappa_orch code location",
            "pass the file that calls build_kappa_definitions (or a KappaPipelinesComponent's project)",
        )
    graph = defs.resolve_asset_graph()
    selected = defs.resolve_job_def(REPROCESS_JOB).asset_layer.selected_asset_keys
    mine = [key for key in sorted(selected) if graph.get(key).metadata.get("pipeline") == pipeline]
    versions = [key for key in mine if "fingerprint" in graph.get(key).metadata]
    if len(mine) != 2 or len(versions) != 1:
        raise OperationRefused(
            f"{path} defines no reprocess assets of pipeline {pipeline!r}",
            "check the name (`kappa-orch plan` lists the pipelines) and that the code location's specs "
            "folder holds its spec",
        )
    alias = next(key for key in mine if key != versions[0])
    return [versions[0], alias], graph.get(versions[0]).assets_def.op.name


def run_selection(
    pipelines: list[Any], chosen: Any, platform: Any, definitions: Path | None, resources: dict[str, Any]
) -> tuple[list[Any], list[Any], str, dict[str, Any]]:
    """What a foreground reprocess materialises: the assets, the pipeline's two keys, the
    versions asset's op and the resources; from the code location file when given, else
    kappa_orch's own assets for the specs folder."""
    from dagster import AssetsDefinition

    from kappa_orch.dagster.assets import alias_key, pipeline_assets, version_key
    from kappa_orch.dagster.quality import alias_check, live_input_balance_check

    if definitions is not None:
        defs = load_definitions(definitions)
        selection, versions_op = reprocess_selection(defs, chosen.name, definitions)
        return list(defs.assets or []), selection, versions_op, {**resources, **dict(defs.resources or {})}
    assets = pipeline_assets(pipelines, git_commit=platform.commit(), dagster_url=platform.dagster_url)
    # the alias's serving checks run right after the swap, as a sensor's run of the
    # reprocess job runs them (not only on the hourly schedule)
    assets += [alias_check(chosen), live_input_balance_check(chosen)]
    selection = [version_key(chosen.spec), alias_key(chosen.spec)]
    [op] = [a.op.name for a in assets if isinstance(a, AssetsDefinition) and selection[0] in a.keys]
    return assets, selection, op, resources
