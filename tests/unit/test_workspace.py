"""The reference deployment loads as `dagster dev -w workspace.yaml` loads it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_definitions_load_and_hold_the_resources() -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from definitions import defs
    finally:
        sys.path.remove(str(ROOT))
    defs.validate_loadable(defs)
    assert set(defs.resources or {}) == {"kafka", "flink", "warehouse"}


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
