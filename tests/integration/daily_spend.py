"""Helpers of the tests that run daily_spend alone on an isolated platform: the oracle's
rows, what the alias serves, the registry's versions and swaps, the reprocess run and
the CLI."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster import build_sensor_context
from sqlalchemy import text

from assets.sample_events import sample_events
from kappa_orch import reprocess_sensor
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.registry import store as registry
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack.config import StackConfig
from tests.integration import scale
from tests.integration.platform import (
    Platform,
    isolated_platform,
    produce_authorizations,
    run_reprocess,
    start_cli,
)

EVENTS = 20_000


@contextmanager
def daily_spend_platform(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> Iterator[Platform]:
    """An isolated platform with daily_spend alone and 20,000 authorizations, a minute apart."""
    with isolated_platform(stack, kafka, flink, tmp_path, only=["daily_spend"]) as platform:
        events = sample_events(EVENTS, step_ms=60_000).authorizations
        produce_authorizations(platform, kafka, events, event_timestamps=False)
        yield platform


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


def sensor_requests(platform: Platform) -> list[Any]:
    sensor = reprocess_sensor(list(platform.pipelines().values()))
    with build_sensor_context(resources={"warehouse": platform.warehouse}) as context:
        result = sensor(context)
    return list(getattr(result, "run_requests", None) or [])


def deploy_v1(platform: Platform, kafka: KafkaResource, flink: FlinkResource) -> None:
    [request] = sensor_requests(platform)  # nothing live yet: the sensor asks for the first deploy
    assert request.run_key.startswith("reprocess:daily_spend:")
    assert run(platform, platform.pipelines()["daily_spend"], kafka, flink).success
    wait_serving(platform, expected(platform.events, {"approved"}))  # type: ignore[attr-defined]
