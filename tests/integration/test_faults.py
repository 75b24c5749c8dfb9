"""Versions that survive faults, on the real stack: a job cancelled from the Flink UI is
reported degraded (status, plan, the flink_job_running check) and repaired by the repair
sensor's job; a rollback to a version without a job is refused; a superseded candidate
whose job is gone is abandoned; a deploy without a free slot fails at once with the
numbers; rollbacks across removed and retyped columns serve each version's own columns."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from dagster import AssetCheckEvaluation, DagsterInstance, build_sensor_context
from sqlalchemy import text

from assets.sample_events import sample_events
from kappa_orch.dagster.automation import repair_job, repair_sensor
from kappa_orch.dagster.health import JOB_RUNNING_CHECK
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.engine.protocol import ACTIVE_JOB_STATES
from kappa_orch.errors import KappaError
from kappa_orch.lifecycle.deploy import deploy
from kappa_orch.lifecycle.services import Services
from kappa_orch.registry import store as registry
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.spec.model import LoadedPipeline
from kappa_orch.stack import manager
from kappa_orch.stack.config import StackConfig
from kappa_orch.stack.flink import FlinkService
from tests.integration.platform import (
    Platform,
    count_declined_too,
    isolated_platform,
    observe_once,
    produce_authorizations,
    resources_for,
    run_reprocess,
    start_cli,
)
from tests.integration.served import cli, expected, serving, versions, wait_exact

pytestmark = pytest.mark.integration

EVENTS = 20_000


@pytest.fixture
def platform(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> Iterator[Platform]:
    with isolated_platform(stack, kafka, flink, tmp_path, only=["daily_spend", "account_latest"]) as platform:
        events = sample_events(EVENTS, step_ms=60_000).authorizations
        produce_authorizations(platform, kafka, events, event_timestamps=False)
        yield platform


def go_live(platform: Platform, pipeline: LoadedPipeline, kafka: KafkaResource, flink: FlinkResource) -> None:
    assert run_reprocess(platform, pipeline, kafka, flink).success


def health_evaluations(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource, cursor: str | None
) -> tuple[list[AssetCheckEvaluation], str | None]:
    events, cursor = observe_once(platform, kafka, flink, cursor)
    checks = [e for e in events if isinstance(e, AssetCheckEvaluation)]
    return [e for e in checks if e.check_name == JOB_RUNNING_CHECK], cursor


def test_lost_jobs_are_reported_degraded_refused_for_rollback_and_repaired(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource, stack: StackConfig
) -> None:
    # found: after the cluster lost the jobs, `status` said `(in sync)`, `plan` said
    # `none`, and the aliases silently stopped updating until someone deployed by hand;
    # `rollback` accepted a ready version whose job was gone
    go_live(platform, platform.pipelines()["daily_spend"], kafka, flink)
    changed = count_declined_too(platform)
    go_live(platform, changed, kafka, flink)
    wait_exact(platform, "daily_spend", expected(platform, "daily_spend", {"approved", "declined"}))
    before = versions(platform, "daily_spend")
    assert (before[1].state, before[2].state) == (registry.READY, registry.LIVE)
    _, cursor = health_evaluations(platform, kafka, flink, None)
    time.sleep(6)  # a checkpoint after the tables matched

    # someone cancels both jobs in the Flink UI
    for row in before.values():
        flink.cancel(row.flink_job_id or "")
    code, output = cli(platform, stack, "status", "daily_spend", "--json")
    assert code == 0, output
    [status] = json.loads(output)
    assert status["in_sync"] is False and status["degraded"] is True
    by_version = {v["version"]: v for v in status["versions"]}
    assert by_version[2]["degraded"] == f"v2 is live but its Flink job {before[2].flink_job_id} is CANCELED"
    assert by_version[1]["degraded"] == f"v1 is ready but its Flink job {before[1].flink_job_id} is CANCELED"
    code, output = cli(platform, stack, "status", "daily_spend")
    assert "DEGRADED: its job is not running" in output and "kappa-orch repair daily_spend" in output
    code, output = cli(platform, stack, "plan", "--json")
    plan = {p["pipeline"]: p for p in json.loads(output)}["daily_spend"]
    assert (plan["action"], plan["repair"]) == ("repair", [1, 2])

    # a rollback to v1 would serve a table nobody updates: refused, the alias stays
    code, output = cli(platform, stack, "rollback", "daily_spend", "--to", "1")
    assert code == 1
    assert "v1 of 'daily_spend' is ready but its Flink job" in output and "is CANCELED" in output
    assert "kappa-orch repair daily_spend --version 1" in output
    assert "Traceback" not in output

    # the observation sensor turns the check red, with the reason
    [failed], cursor = health_evaluations(platform, kafka, flink, cursor)
    assert not failed.passed
    assert "v2 is live but its Flink job" in (failed.description or "")

    # the repair sensor asks for a repair, once per lost job; the run redeploys both
    # from their last retained checkpoints
    pipelines = list(platform.pipelines().values())
    with build_sensor_context(resources={"flink": flink, "warehouse": platform.warehouse}) as context:
        requested = repair_sensor(pipelines)(context)
    [request] = getattr(requested, "run_requests", None) or []
    assert request.tags["kappa/pipeline"] == "daily_spend"
    more = sample_events(5_000, seed=7, start_ms=1_767_225_600_000 + EVENTS * 60_000, step_ms=60_000)
    kafka.produce(platform.topic("payments.authorizations"), more.authorizations, key=lambda e: e["account"])  # type: ignore[index]
    platform.events = platform.events + more.authorizations  # type: ignore[attr-defined]
    repaired = repair_job(pipelines).execute_in_process(
        run_config=request.run_config,
        resources=resources_for(kafka, flink, platform.warehouse),
        instance=DagsterInstance.ephemeral(),
    )
    assert repaired.success
    after = versions(platform, "daily_spend")
    assert (after[1].state, after[2].state) == (registry.READY, registry.LIVE)
    for version in (1, 2):
        assert after[version].flink_job_id != before[version].flink_job_id
        assert flink.job_state(after[version].flink_job_id or "") in ACTIVE_JOB_STATES
        restored = flink._call("GET", flink.rest_url, f"/jobs/{after[version].flink_job_id}/checkpoints")
        assert before[version].flink_job_id in restored["latest"]["restored"]["external_path"]
    # the live version counts the old events once and the new ones too: exact
    wait_exact(platform, "daily_spend", expected(platform, "daily_spend", {"approved", "declined"}))
    [healthy], _ = health_evaluations(platform, kafka, flink, cursor)
    assert healthy.passed
    with build_sensor_context(resources={"flink": flink, "warehouse": platform.warehouse}) as context:
        assert not getattr(repair_sensor(pipelines)(context), "run_requests", None)
    # and the rollback now goes through, to a table that kept up
    code, output = cli(platform, stack, "rollback", "daily_spend", "--to", "1")
    assert code == 0, output
    wait_exact(platform, "daily_spend", expected(platform, "daily_spend", {"approved"}))


def test_a_superseded_candidate_whose_job_is_gone_is_abandoned(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource, stack: StackConfig
) -> None:
    # found: a superseded version whose job died while catching up stayed `catching_up` for ever
    go_live(platform, platform.pipelines()["daily_spend"], kafka, flink)
    candidate = count_declined_too(platform)
    deployed = deploy(candidate, Services(kafka, flink, platform.warehouse))
    assert versions(platform, "daily_spend")[2].state == registry.CATCHING_UP
    flink.cancel(deployed.flink_job_id or "")
    # the spec moves on before anyone finishes v2
    platform.set_sql("daily_spend", candidate.sql_text.replace("COUNT(*)", "COUNT(auth_id)"))
    code, output = cli(platform, stack, "plan", "--json")
    plan = {p["pipeline"]: p for p in json.loads(output)}["daily_spend"]
    assert plan["abandon"] == [2] and plan["repair"] == []
    code, output = cli(platform, stack, "repair", "daily_spend")
    assert code == 0, output
    assert "v2 abandoned" in output
    v2 = versions(platform, "daily_spend")[2]
    assert v2.state == registry.FAILED and (v2.error or "").startswith("abandoned: its Flink job")


def test_a_superseded_candidate_whose_run_ended_is_stopped_with_a_savepoint(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource, stack: StackConfig
) -> None:
    # found: a candidate whose run was abandoned kept its job running (a slot, the log read)
    go_live(platform, platform.pipelines()["daily_spend"], kafka, flink)
    candidate = count_declined_too(platform)
    deployed = deploy(candidate, Services(kafka, flink, platform.warehouse))
    assert flink.job_state(deployed.flink_job_id or "") == "RUNNING"
    # no run holds the claim, and the spec moves on
    platform.set_sql("daily_spend", candidate.sql_text.replace("COUNT(*)", "COUNT(auth_id)"))
    code, output = cli(platform, stack, "plan", "--json")
    assert {p["pipeline"]: p for p in json.loads(output)}["daily_spend"]["abandon"] == [2]
    code, output = cli(platform, stack, "repair", "daily_spend")
    assert code == 0, output
    assert "v2 abandoned" in output and "its slot is free" in output
    v2 = versions(platform, "daily_spend")[2]
    assert flink.job_state(deployed.flink_job_id or "") == "FINISHED"
    assert v2.state == registry.FAILED and "a reprocess of its fingerprint resumes it from" in (
        v2.error or ""
    )
    assert (v2.checkpoint or {}).get("path")


@pytest.mark.disruptive  # holds every free slot of the shared cluster
def test_a_deploy_without_a_free_slot_fails_at_once_with_the_numbers(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource, stack: StackConfig
) -> None:
    # found: with every slot held, the candidate reported `0 events/s` three times and
    # failed with a restart-strategy message; the cause was only in Flink's exception history
    go_live(platform, platform.pipelines()["daily_spend"], kafka, flink)
    free, total = flink.slots()
    fillers = [
        flink.submit_sql(
            setup=[
                f"CREATE TEMPORARY TABLE gen{i} (x INT) "
                "WITH ('connector' = 'datagen', 'rows-per-second' = '1')",
                f"CREATE TEMPORARY TABLE hole{i} (x INT) WITH ('connector' = 'blackhole')",
            ],
            inserts=[f"INSERT INTO hole{i} SELECT x FROM gen{i}"],
            job_name=f"slot-filler-{platform.suffix}-{i}",
        )
        for i in range(free)
    ]
    try:
        deadline = time.monotonic() + 60
        while flink.slots()[0] > 0:
            assert time.monotonic() < deadline, "the filler jobs did not take every slot"
            time.sleep(1)
        changed = count_declined_too(platform)
        started = time.monotonic()
        with pytest.raises(KappaError) as error:
            deploy(changed, Services(kafka, flink, platform.warehouse))
        assert time.monotonic() - started < 60  # at once, not after a catch-up that cannot start
        assert f"the Flink cluster has 0 of {total} free" in error.value.problem
        assert "daily_spend v1 (live)" in error.value.problem
        assert "retire.grace" in (error.value.fix or "")
        # nothing was written: no v2, no table
        assert sorted(versions(platform, "daily_spend")) == [1]
        with platform.warehouse.connect() as conn:
            assert conn.execute(text("SELECT to_regclass('analytics.daily_spend__v2')")).scalar() is None
    finally:
        for job in fillers:
            flink.cancel(job)


def test_rollback_and_roll_forward_across_removed_and_retyped_columns(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource, stack: StackConfig
) -> None:
    go_live(platform, platform.pipelines()["daily_spend"], kafka, flink)
    spec_file = platform.specs / "daily_spend.yaml"
    raw = yaml.safe_load(spec_file.read_text())
    sql = platform.pipelines()["daily_spend"].sql_text
    # v2: spend_cents retyped to DOUBLE, authorizations removed
    raw["target"]["columns"] = [
        {**c, "type": "DOUBLE"} if c["name"] == "spend_cents" else c
        for c in raw["target"]["columns"]
        if c["name"] != "authorizations"
    ]
    raw["approval"] = {"dropping_columns": False}  # this team drops columns without asking
    spec_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    narrowed = platform.set_sql(
        "daily_spend",
        sql.replace("COUNT(*) AS authorizations,", "").replace(
            "SUM(amount_cents) AS spend_cents", "CAST(SUM(amount_cents) AS DOUBLE) AS spend_cents"
        ),
    )
    code, output = cli(platform, stack, "plan")
    assert "columns: - authorizations BIGINT, ~ spend_cents BIGINT -> DOUBLE" in output, output
    go_live(platform, narrowed, kafka, flink)

    def columns() -> dict[str, str]:
        with platform.warehouse.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = 'analytics' AND table_name = 'daily_spend' "
                    "ORDER BY ordinal_position"
                )
            )
            return {name: kind for name, kind in rows}

    assert columns() == {"account": "text", "spend_day": "date", "spend_cents": "double precision"}
    code, output = cli(platform, stack, "rollback", "daily_spend", "--to", "1")
    assert code == 0, output
    assert columns() == {
        "account": "text",
        "spend_day": "date",
        "authorizations": "bigint",
        "spend_cents": "bigint",
    }
    with platform.warehouse.connect() as conn:
        got = {
            tuple(r)
            for r in conn.execute(
                text("SELECT account, spend_day, authorizations, spend_cents FROM analytics.daily_spend")
            )
        }
    assert got == expected(platform, "daily_spend")
    code, output = cli(platform, stack, "rollback", "daily_spend", "--to", "2")
    assert code == 0, output
    assert columns() == {"account": "text", "spend_day": "date", "spend_cents": "double precision"}


def test_a_view_or_version_table_dropped_by_hand_is_reported_and_repaired(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource, stack: StackConfig
) -> None:
    go_live(platform, platform.pipelines()["daily_spend"], kafka, flink)
    changed = count_declined_too(platform)
    go_live(platform, changed, kafka, flink)
    v2_rows = expected(platform, "daily_spend", {"approved", "declined"})
    wait_exact(platform, "daily_spend", v2_rows)

    # the alias view dropped by hand: status and plan say so, repair rebuilds it
    with platform.warehouse.begin() as conn:
        conn.execute(text("DROP VIEW analytics.daily_spend"))
    code, output = cli(platform, stack, "status", "daily_spend")
    assert "DEGRADED" in output and "alias view analytics.daily_spend of live v2 is missing" in output
    code, output = cli(platform, stack, "plan", "--json")
    plan = {p["pipeline"]: p for p in json.loads(output)}["daily_spend"]
    assert plan["action"] == "repair" and "alias view analytics.daily_spend" in plan["detail"]
    code, output = cli(platform, stack, "repair", "daily_spend")
    assert code == 0 and "alias analytics.daily_spend rebuilt" in output, output
    assert serving(platform, "daily_spend") == v2_rows

    # a retained version's table dropped by hand (CASCADE: the alias view goes with it)
    with platform.warehouse.begin() as conn:
        conn.execute(text("DROP TABLE analytics.daily_spend__v1 CASCADE"))
    code, output = cli(platform, stack, "status", "daily_spend", "--json")
    [status] = json.loads(output)
    by_version = {v["version"]: v for v in status["versions"]}
    assert by_version[1]["degraded"] == (
        "v1 is ready but its table daily_spend__v1 is missing (dropped by hand?)"
    )
    code, output = cli(platform, stack, "rollback", "daily_spend", "--to", "1")
    assert code == 1 and "analytics.daily_spend__v1 is missing" in output and "Traceback" not in output
    code, output = cli(platform, stack, "repair", "daily_spend")
    assert code == 0, output
    assert "marked failed" in output and "rebuilt" in output
    assert versions(platform, "daily_spend")[1].state == registry.FAILED
    assert serving(platform, "daily_spend") == v2_rows
    code, output = cli(platform, stack, "status", "daily_spend", "--json")
    [status] = json.loads(output)
    assert status["in_sync"] is True and status["degraded"] is False


def _taskmanager_pid(stack: StackConfig) -> int:
    pid = FlinkService(stack).live_pids().get("flink-taskmanager")
    assert pid is not None, "no TaskManager runs"
    return pid


@pytest.mark.disruptive  # kills the shared TaskManager
def test_a_taskmanager_killed_during_a_reprocess_costs_nothing(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource, stack: StackConfig
) -> None:
    # found: with the fixed-delay restart strategy (3 attempts) a TaskManager loss failed
    # every job for good, and `stack up` restarted the whole Flink service, so every live
    # job of every pipeline was gone
    for name in ("daily_spend", "account_latest"):
        go_live(platform, platform.pipelines()[name], kafka, flink)
    live_jobs = {name: versions(platform, name)[1].flink_job_id for name in ("daily_spend", "account_latest")}
    count_declined_too(platform)
    reprocess = start_cli(platform, stack, "reprocess", "daily_spend", "--wait")
    try:
        deadline = time.monotonic() + 180
        while (
            2 not in versions(platform, "daily_spend")
            or not versions(platform, "daily_spend")[2].flink_job_id
        ):
            assert reprocess.poll() is None, reprocess.communicate()[0]
            assert time.monotonic() < deadline, "the candidate was not deployed"
            time.sleep(0.5)
        # more events while the TaskManager is gone: nothing may be lost or counted twice
        pid = _taskmanager_pid(stack)
        os.kill(pid, signal.SIGKILL)
        more = sample_events(5_000, seed=11, start_ms=1_767_225_600_000 + EVENTS * 60_000, step_ms=60_000)
        kafka.produce(
            platform.topic("payments.authorizations"), more.authorizations, key=lambda e: e["account"]
        )  # type: ignore[index]
        platform.events = platform.events + more.authorizations  # type: ignore[attr-defined]
        time.sleep(5)
        messages: list[str] = []
        manager.up(stack, report=messages.append, only=[FlinkService(stack)])
        assert "flink: flink-taskmanager not running; starting only that" in messages
        output, _ = reprocess.communicate(timeout=600)
        assert reprocess.returncode == 0, output
    finally:
        if reprocess.poll() is None:
            reprocess.kill()
    # the live jobs kept running (same job ids: restarted by Flink, not redeployed) ...
    for job in live_jobs.values():
        assert flink.job_state(job or "") == "RUNNING"
    assert versions(platform, "account_latest")[1].flink_job_id == live_jobs["account_latest"]
    # ... and every alias is exact, the new events included
    wait_exact(platform, "daily_spend", expected(platform, "daily_spend", {"approved", "declined"}))
    wait_exact(platform, "account_latest", expected(platform, "account_latest"))
    assert versions(platform, "daily_spend")[2].state == registry.LIVE
