"""Scheduled data-quality checks on the real stack: the checks-only job runs every
alias's and batch table's expectations without materialising anything, and reports a
failure with the failing expectation, its unexpected count and sample values; a
failure on a day of the batch table requests exactly that day's backfill, which
repairs it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from dagster import AssetsDefinition, DagsterInstance, Definitions, build_sensor_context, materialize
from sqlalchemy import text

from assets.sample_events import sample_events
from kappa_orch import data_quality_checks, data_quality_schedule, failed_day_sensor, pipeline_assets
from kappa_orch.cli.status_view import render
from kappa_orch.dagster.assets import batch_key
from kappa_orch.dagster.quality import BATCH_CHECK, DATA_QUALITY_JOB, LIVE_BALANCE_CHECK, SERVING_CHECK
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.lifecycle.batch import run_batch
from kappa_orch.lifecycle.log_parity import LOG_PARITY_CHECK
from kappa_orch.lifecycle.services import Services
from kappa_orch.lifecycle.status import pipeline_status
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack.config import StackConfig
from tests.integration.daily_spend import expected, run, wait_serving
from tests.integration.platform import Platform, isolated_platform, produce_authorizations, resources_for

pytestmark = pytest.mark.integration

DAYS = [date(2026, 1, 1), date(2026, 1, 2)]  # 2,000 events a minute apart


@pytest.fixture
def platform(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> Iterator[Platform]:
    with isolated_platform(stack, kafka, flink, tmp_path, only=["daily_spend"]) as platform:
        events = sample_events(2_000, step_ms=60_000).authorizations
        produce_authorizations(platform, kafka, events, event_timestamps=True)
        yield platform


def test_scheduled_checks_run_without_materialising_and_report_failures(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource
) -> None:
    pipelines = list(platform.pipelines().values())
    [pipeline] = pipelines
    assert run(platform, pipeline, kafka, flink).success
    wait_serving(platform, expected(platform.events, {"approved"}))  # type: ignore[attr-defined]
    run_batch(pipeline, DAYS, Services(kafka, flink, platform.warehouse))

    schedule = data_quality_schedule(pipelines, cron_schedule="*/15 * * * *")
    assert schedule.cron_schedule == "*/15 * * * *"
    defs = Definitions(
        assets=pipeline_assets(pipelines),
        asset_checks=data_quality_checks(pipelines),
        schedules=[schedule],
        resources=resources_for(kafka, flink, platform.warehouse),
    )
    job = defs.resolve_job_def(DATA_QUALITY_JOB)

    healthy = job.execute_in_process(instance=DagsterInstance.ephemeral())
    assert {e.check_name: e.passed for e in healthy.get_asset_check_evaluations()} == {
        SERVING_CHECK: True,
        LIVE_BALANCE_CHECK: True,
        BATCH_CHECK: True,
        LOG_PARITY_CHECK: True,  # both closed days recomputed from the log: the same rows
    }
    assert healthy.get_asset_materialization_events() == []

    # a bad row reaches the serving table: the next scheduled run says so
    with platform.warehouse.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO analytics.daily_spend__v1 (account, spend_day, authorizations, spend_cents) "
                "VALUES ('acct-bad', DATE '2026-01-01', 1, -5)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO analytics.daily_spend_daily (account, spend_day, authorizations, spend_cents) "
                "VALUES ('acct-bad', DATE '2026-01-02', 1, -7)"
            )
        )
        # found: hand edits of the live table passed every scheduled check
        edits = conn.execute(
            text(
                "SELECT account, spend_day FROM analytics.daily_spend__v1 WHERE account <> 'acct-bad' "
                "ORDER BY account, spend_day LIMIT 200"
            )
        ).all()
        for account, day in edits[:100]:
            conn.execute(
                text("DELETE FROM analytics.daily_spend__v1 WHERE account = :a AND spend_day = :d"),
                {"a": account, "d": day},
            )
        for account, day in edits[100:]:
            conn.execute(
                text(
                    "UPDATE analytics.daily_spend__v1 SET spend_cents = spend_cents + 1 "
                    "WHERE account = :a AND spend_day = :d"
                ),
                {"a": account, "d": day},
            )
    failing = job.execute_in_process(instance=DagsterInstance.ephemeral(), raise_on_error=False)
    evaluations = {e.check_name: e for e in failing.get_asset_check_evaluations()}
    by_log = evaluations[LOG_PARITY_CHECK]
    assert not by_log.passed
    found = {k: by_log.metadata[k].value for k in ("missing", "not_in_log", "differing")}
    assert found == {"missing": 100, "not_in_log": 1, "differing": 100}  # every planted edit
    samples = by_log.metadata["sample_keys"].value
    assert samples["not_in_log"] == [{"account": "acct-bad", "spend_day": "2026-01-01"}]  # type: ignore[index]
    deleted = {(a, d.isoformat()) for a, d in edits[:100]}
    assert {(k["account"], k["spend_day"]) for k in samples["missing"]} <= deleted  # type: ignore[index]
    evaluation = evaluations[SERVING_CHECK]
    assert not evaluation.passed
    [detail] = [r for r in evaluation.metadata["results"].value if not r["success"]]  # type: ignore[union-attr]
    assert detail["expectation"] == "expect_column_values_to_be_between"
    assert detail["unexpected_count"] == 1
    assert detail["sample_unexpected"] == [-5]
    # found: samples were bare values; now each names its row by the primary key
    [sample] = detail["sample_rows"]
    assert (sample["account"], sample["spend_day"], sample["spend_cents"]) == ("acct-bad", "2026-01-01", -5)
    # found: a failed scheduled check showed only in the Dagster run; `status` says so too
    [status] = pipeline_status(pipelines, Services(kafka, flink, platform.warehouse))
    failed = {c["check"]: c for c in status.failed_checks}
    assert set(failed) == {SERVING_CHECK, BATCH_CHECK, LOG_PARITY_CHECK}
    assert failed[SERVING_CHECK]["run_id"] == failing.run_id
    assert "expect_column_values_to_be_between" in failed[SERVING_CHECK]["summary"]
    overview = render([status], datetime.now(UTC))[1]
    assert "CHECK FAILED" in overview[0] and overview[1] == "red"
    assert failing.get_asset_materialization_events() == []
    on_batch = evaluations[BATCH_CHECK]
    assert not on_batch.passed
    assert on_batch.metadata["failing_days"].value == ["2026-01-02"]  # type: ignore[union-attr]
    assert on_batch.metadata["recompute_requested"].value is True

    # the spec asks for it (batch.recompute_failed_days): the sensor requests that day, once
    sensor = failed_day_sensor(pipelines)
    with build_sensor_context(resources={"warehouse": platform.warehouse}) as context:
        [request] = sensor(context).run_requests  # type: ignore[union-attr]
    assert request.partition_key == "2026-01-02"
    assert request.asset_selection == [batch_key(pipeline.spec)]
    assert request.tags["kappa/reason"] == "failed check"
    done = materialize(
        [a for a in pipeline_assets(pipelines) if isinstance(a, AssetsDefinition) and a.partitions_def],
        partition_key=request.partition_key,
        resources=resources_for(kafka, flink, platform.warehouse),
        instance=DagsterInstance.ephemeral(),
    )
    assert done.success
    # the recomputed day is the stream's again, and nothing more is requested
    with platform.warehouse.connect() as conn:
        bad = conn.execute(text("SELECT count(*) FROM analytics.daily_spend_daily WHERE spend_cents < 0"))
        assert bad.scalar_one() == 0
    with build_sensor_context(resources={"warehouse": platform.warehouse}) as context:
        assert not getattr(sensor(context), "run_requests", None)
    repaired = job.execute_in_process(instance=DagsterInstance.ephemeral(), raise_on_error=False)
    assert {e.check_name: e.passed for e in repaired.get_asset_check_evaluations()}[BATCH_CHECK]
    [status] = pipeline_status(pipelines, Services(kafka, flink, platform.warehouse))
    # the batch check passes again; the alias still holds the edits
    assert sorted(c["check"] for c in status.failed_checks) == sorted([SERVING_CHECK, LOG_PARITY_CHECK])
