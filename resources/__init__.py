"""The reference deployment's resources: the one place that reads the environment.

Defaults match `kappa-orch stack up`; point them elsewhere with KAPPA_* variables
(`kappa-orch stack env` prints the ones for a local stack on other ports).
"""

from __future__ import annotations

import os
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from dagster import EnvVar

from kappa_orch import FlinkResource, KafkaResource, WarehouseResource

_DEFAULT_WAREHOUSE_URL = "postgresql+psycopg2://kappa:kappa@127.0.0.1:5432/warehouse"
# the local stack's read-only role (checks) and sinks' role (Flink's JDBC writes)
_LOCAL_ROLES = {
    "reader_url": (
        "KAPPA_WAREHOUSE_READER_URL",
        "postgresql+psycopg2://kappa_reader:kappa-reader@127.0.0.1:5432/warehouse",
    ),
    "sink_url": (
        "KAPPA_WAREHOUSE_SINK_URL",
        "postgresql+psycopg2://kappa_sink:kappa-sink@127.0.0.1:5432/warehouse",
    ),
}


def _local_checkpoints() -> str:
    home = Path(os.environ.get("KAPPA_HOME", Path(__file__).resolve().parents[1] / ".kappa")).resolve()
    return (home / "flink" / "checkpoints").as_uri()


def build_resources(*, resolved: bool = False) -> dict[str, object]:
    """The resources every kappa_orch asset, check and sensor of this deployment uses.

    In Dagster, secrets stay `EnvVar`s (Dagster reads them at run time and never shows
    them); `resolved=True` reads them now, for code that uses the resources outside
    Dagster (scripts/reference_platform.py): an `EnvVar` is not a URL there."""
    warehouse_url = _variable("KAPPA_WAREHOUSE_URL", resolved) or _DEFAULT_WAREHOUSE_URL
    return {
        "kafka": KafkaResource(
            bootstrap_servers=os.environ.get("KAPPA_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        ),
        "flink": FlinkResource(
            rest_url=os.environ.get("KAPPA_FLINK_REST_URL", "http://127.0.0.1:8081"),
            sql_gateway_url=os.environ.get("KAPPA_SQL_GATEWAY_URL", "http://127.0.0.1:8083"),
            checkpoint_dir=os.environ.get("KAPPA_FLINK_CHECKPOINT_DIR", _local_checkpoints()),
        ),
        "warehouse": WarehouseResource(url=warehouse_url, **_role_urls(resolved)),
    }


def _variable(name: str, resolved: bool) -> Any:
    """The variable as an EnvVar (in Dagster) or its value (resolved); None when unset."""
    if name not in os.environ:
        return None
    return os.environ[name] if resolved else EnvVar(name)


def _role_urls(resolved: bool) -> dict[str, object]:
    """Each role's URL from its variable; the local stack's roles when the warehouse is
    the local default; else none (the orchestrator's URL serves)."""
    urls: dict[str, object] = {}
    for field, (variable, local) in _LOCAL_ROLES.items():
        if variable in os.environ:
            urls[field] = _variable(variable, resolved)
        elif "KAPPA_WAREHOUSE_URL" not in os.environ:
            urls[field] = local
    return urls


@cache
def git_commit() -> str | None:
    """The deployment's commit, recorded with every swap (KAPPA_GIT_COMMIT, else git)."""
    if "KAPPA_GIT_COMMIT" in os.environ:
        return os.environ["KAPPA_GIT_COMMIT"]
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parents[1],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def data_quality_cron() -> str:
    """When the scheduled data-quality checks run (KAPPA_DATA_QUALITY_CRON, hourly by default)."""
    return os.environ.get("KAPPA_DATA_QUALITY_CRON", "0 * * * *")
