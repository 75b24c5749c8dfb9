"""The reference deployment's configuration: the one place that reads the environment.

Defaults match `kappa-orch stack up`; point them elsewhere with KAPPA_* variables
(`kappa-orch stack env` prints the ones for a local stack on other ports).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from assets import SPECS_DIR
from kappa_orch import PlatformConfig

ROOT = Path(__file__).resolve().parents[1]

# KAPPA_* variables over the reference deployment's own folders
CONFIG = PlatformConfig.from_env(os.environ, defaults={"specs": SPECS_DIR, "home": ROOT / ".kappa"})


def build_resources(*, resolved: bool = False) -> dict[str, Any]:
    """The kafka, flink and warehouse resources. In Dagster, secrets stay `EnvVar`s (read
    at run time, never shown); `resolved=True` reads them now, for code that uses the
    resources outside Dagster (scripts/reference_platform.py)."""
    return CONFIG.resources(dagster=not resolved)
