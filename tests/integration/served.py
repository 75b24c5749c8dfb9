"""Helpers of the tests that run several reference pipelines on an isolated platform:
what a pipeline's alias serves, the oracle's rows, waiting until they are equal, the
registry's versions, and the CLI run to its end."""

from __future__ import annotations

import subprocess
import time
from typing import Any

from sqlalchemy import text

from kappa_orch.registry import store as registry
from kappa_orch.stack.config import StackConfig
from tests.integration import scale
from tests.integration.platform import KAPPA, Platform, cli_env


def serving(platform: Platform, pipeline: str) -> set[tuple[Any, ...]]:
    spec = platform.pipelines()[pipeline].spec
    columns = ", ".join(c.name for c in spec.target.columns)
    with platform.warehouse.connect() as conn:
        return {tuple(r) for r in conn.execute(text(f"SELECT {columns} FROM {spec.target.alias}"))}


def expected(platform: Platform, pipeline: str, statuses: set[str] | None = None) -> set[tuple[Any, ...]]:
    events = platform.events  # type: ignore[attr-defined]
    if pipeline == "account_latest":
        return scale.account_latest(events)
    return scale.daily_spend(events, statuses or {"approved"})


def wait_exact(platform: Platform, pipeline: str, rows: set[tuple[Any, ...]], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while (got := serving(platform, pipeline)) != rows:
        assert time.monotonic() < deadline, (
            f"{pipeline} serves {len(got)} rows, expected {len(rows)} "
            f"({len(got - rows)} unexpected, {len(rows - got)} missing)"
        )
        time.sleep(2)


def versions(platform: Platform, pipeline: str) -> dict[int, registry.VersionRow]:
    with platform.warehouse.begin() as conn:
        return {r.version: r for r in registry.pipeline_versions(conn, pipeline)}


def cli(platform: Platform, stack: StackConfig, *args: str, timeout: float = 300) -> tuple[int, str]:
    env = cli_env(platform, stack)
    done = subprocess.run([KAPPA, *args], env=env, capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout + done.stderr
