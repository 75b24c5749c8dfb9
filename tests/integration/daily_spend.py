"""Helpers of the tests that run daily_spend alone on an isolated platform: the oracle's
rows, what the alias serves, the registry's versions and swaps, the reprocess run and
the CLI."""

from __future__ import annotations

import subprocess
import time
from typing import Any

from sqlalchemy import text

from kappa_orch.registry import store as registry
from kappa_orch.stack.config import StackConfig
from tests.integration import scale
from tests.integration.platform import Platform, run_reprocess, start_cli


def expected(auths: list[dict[str, Any]], statuses: set[str]) -> set[tuple[Any, ...]]:
    return scale.daily_spend(auths, statuses)


def serving(platform: Platform) -> set[tuple[Any, ...]]:
    with platform.warehouse.connect() as conn:
        rows = conn.execute(
            text("SELECT account, spend_day, authorizations, spend_cents FROM analytics.daily_spend")
        )
        return {tuple(r) for r in rows}


run = run_reprocess


def versions(platform: Platform) -> dict[int, registry.VersionRow]:
    with platform.warehouse.begin() as conn:
        return {r.version: r for r in registry.pipeline_versions(conn, "daily_spend")}


def swaps(platform: Platform) -> list[dict[str, Any]]:
    with platform.warehouse.begin() as conn:
        return registry.swap_history(conn, "daily_spend")


def wait_serving(platform: Platform, rows: set[tuple[Any, ...]], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while serving(platform) != rows:
        assert time.monotonic() < deadline, (
            f"alias serves {len(serving(platform))} rows, expected {len(rows)}"
        )
        time.sleep(1)


def cli(platform: Platform, stack: StackConfig, *args: str) -> subprocess.Popen[str]:
    return start_cli(platform, stack, *args)
