"""The reference deployment loads as `dagster dev -w workspace.yaml` loads it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_definitions_load_and_hold_the_resources() -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from definitions import defs
    finally:
        sys.path.remove(str(ROOT))
    defs.validate_loadable(defs)
    assert set(defs.resources or {}) == {"kafka", "flink", "warehouse", "openlineage", "alerts"}


@pytest.mark.slow
def test_workspace_file_loads_with_the_dagster_cli() -> None:
    # `dagster definitions validate` loads the code location exactly as `dagster dev` does
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_definitions_honour_kappa_specs(tmp_path: Path) -> None:
    # found: the reference definitions.py ignored KAPPA_SPECS

    for name in ("daily_spend.yaml", "daily_spend.sql"):
        shutil.copy(ROOT / "assets" / name, tmp_path / name)
    code = (
        "from definitions import defs; "
        "groups = {s.group_name for s in defs.resolve_all_asset_specs()}; "
        "print(sorted(groups - {'sources', 'dead_letters', 'platform'}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "KAPPA_SPECS": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "['daily_spend']"


def test_resources_outside_dagster_read_the_variables_now(monkeypatch: pytest.MonkeyPatch) -> None:
    # found: scripts/reference_platform.py crashed with "Could not parse SQLAlchemy URL"
    # whenever KAPPA_WAREHOUSE_URL was set (the resource held a Dagster EnvVar)
    from sqlalchemy import make_url

    url = "postgresql+psycopg2://someone:pw@127.0.0.1:6543/elsewhere"
    monkeypatch.setenv("KAPPA_WAREHOUSE_URL", url)
    monkeypatch.setenv("KAPPA_WAREHOUSE_SINK_URL", url.replace("someone", "sink"))
    monkeypatch.syspath_prepend(str(ROOT))
    import importlib

    import resources

    # the deployment reads its configuration once, at import
    try:
        warehouse = importlib.reload(resources).build_resources(resolved=True)["warehouse"]
        in_dagster = resources.build_resources()["warehouse"]
    finally:
        monkeypatch.undo()
        importlib.reload(resources)
    assert make_url(warehouse.url).database == "elsewhere"
    assert warehouse.jdbc_options()["username"] == "sink"
    assert warehouse.reader_url is None  # another warehouse: no local roles
    # in Dagster the secrets stay EnvVars (read at run time, never shown)
    assert type(in_dagster.url).__name__ == "EnvVar"
