"""Scheduled data-quality checks on the real stack: the checks-only job runs every
alias's expectations without materialising anything, and reports a failure with the
failing expectation, its unexpected count and sample values."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions
from sqlalchemy import text

from assets.sample_events import sample_events
from kappa_orch import alias_checks, data_quality_schedule, pipeline_assets
from kappa_orch.dagster.quality import DATA_QUALITY_JOB
from kappa_orch.resources.flink import FlinkResource
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack.config import StackConfig
from tests.integration.platform import Platform, isolated_platform
from tests.integration.test_reprocess import expected, run, wait_serving

pytestmark = pytest.mark.integration


@pytest.fixture
def platform(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> Iterator[Platform]:
    with isolated_platform(stack, kafka, flink, tmp_path, only=["daily_spend"]) as platform:
        events = sample_events(2_000, step_ms=60_000).authorizations
        kafka.produce(platform.topic("payments.authorizations"), events, key=lambda e: e["account"])  # type: ignore[index]
        platform.events = events  # type: ignore[attr-defined]
        yield platform


def test_scheduled_checks_run_without_materialising_and_report_failures(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource
) -> None:
    pipelines = list(platform.pipelines().values())
    assert run(platform, pipelines[0], kafka, flink).success
    wait_serving(platform, expected(platform.events, {"approved"}))  # type: ignore[attr-defined]

    schedule = data_quality_schedule(pipelines, cron_schedule="*/15 * * * *")
    assert schedule.cron_schedule == "*/15 * * * *"
    defs = Definitions(
        assets=pipeline_assets(pipelines),
        asset_checks=alias_checks(pipelines),
        schedules=[schedule],
        resources={"kafka": kafka, "flink": flink, "warehouse": platform.warehouse},
    )
    job = defs.resolve_job_def(DATA_QUALITY_JOB)

    healthy = job.execute_in_process(instance=DagsterInstance.ephemeral())
    [evaluation] = healthy.get_asset_check_evaluations()
    assert evaluation.check_name == "serving_expectations" and evaluation.passed
    assert healthy.get_asset_materialization_events() == []

    # a bad row reaches the serving table: the next scheduled run says so
    with platform.warehouse.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO analytics.daily_spend__v1 (account, spend_day, authorizations, spend_cents) "
                "VALUES ('acct-bad', DATE '2026-01-01', 1, -5)"
            )
        )
    failing = job.execute_in_process(instance=DagsterInstance.ephemeral(), raise_on_error=False)
    [evaluation] = failing.get_asset_check_evaluations()
    assert not evaluation.passed
    [detail] = [r for r in evaluation.metadata["results"].value if not r["success"]]  # type: ignore[union-attr]
    assert detail["expectation"] == "expect_column_values_to_be_between"
    assert detail["unexpected_count"] == 1
    assert detail["sample_unexpected"] == [-5]
    assert failing.get_asset_materialization_events() == []
