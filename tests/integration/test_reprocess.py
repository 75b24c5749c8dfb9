"""The Kappa reprocess on the real stack: sensor -> candidate -> catch-up -> gate -> swap;
a failing gate; a run killed during catch-up; rollback; concurrent requests; and
readers that query the alias across swaps."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import DagsterInstance, build_sensor_context
from sqlalchemy import create_engine, text

from assets.sample_events import sample_events
from kappa_orch import reprocess_sensor, retire_job, retire_sensor
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.errors import KappaError
from kappa_orch.lifecycle.deploy import deploy
from kappa_orch.lifecycle.swap import swap
from kappa_orch.registry import claims
from kappa_orch.registry import store as registry
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack.config import StackConfig
from tests.integration.daily_spend import cli, expected, run, serving, swaps, versions, wait_serving
from tests.integration.platform import (
    ALL_STATUSES,
    KAPPA,
    ORIGINAL,
    Platform,
    cli_env,
    isolated_platform,
    produce_authorizations,
)

pytestmark = pytest.mark.integration

EVENTS = 20_000
NEGATIVE = "SUM(amount_cents) AS spend_cents"
TOTALS = "SELECT count(*), sum(authorizations), sum(spend_cents) FROM analytics.daily_spend"


@pytest.fixture
def platform(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> Iterator[Platform]:
    with isolated_platform(stack, kafka, flink, tmp_path, only=["daily_spend"]) as platform:
        events = sample_events(EVENTS, step_ms=60_000).authorizations
        produce_authorizations(platform, kafka, events, event_timestamps=False)
        yield platform


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


def test_a_changed_spec_is_reprocessed_checked_and_swapped(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource
) -> None:
    deploy_v1(platform, kafka, flink)
    assert sensor_requests(platform) == []

    changed = platform.set_sql(
        "daily_spend", platform.pipelines()["daily_spend"].sql_text.replace(ORIGINAL, ALL_STATUSES)
    )
    [request] = sensor_requests(platform)
    assert request.tags["kappa/fingerprint"] in request.run_key
    result = run(platform, changed, kafka, flink)
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        "expectations": True,
        "unique_primary_key": True,
        "parity_with_live": True,
        "complete_history": True,
        "input_balance": True,
        "no_late_records": True,
    }

    # the alias serves the new version, with exactly the rows the new SQL defines
    assert serving(platform) == expected(platform.events, {"approved", "declined"})  # type: ignore[attr-defined]
    rows = versions(platform)
    assert (rows[1].state, rows[2].state) == (registry.READY, registry.LIVE)
    [first, second] = swaps(platform)
    assert (first["from_version"], first["to_version"], first["reason"]) == (None, 1, "first deploy")
    assert (second["from_version"], second["to_version"], second["reason"]) == (1, 2, "reprocess")
    assert second["run_id"] == result.run_id
    assert sensor_requests(platform) == []  # fires once per fingerprint


def test_a_failing_check_keeps_the_alias_and_fails_the_candidate(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource, stack: StackConfig
) -> None:
    deploy_v1(platform, kafka, flink)
    broken = platform.set_sql(
        "daily_spend", platform.pipelines()["daily_spend"].sql_text.replace(NEGATIVE, f"-{NEGATIVE}")
    )
    result = run(platform, broken, kafka, flink)
    assert not result.success
    [failed] = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert failed.check_name == "expectations"
    [detail] = [r for r in failed.metadata["results"].value if not r["success"]]  # type: ignore[union-attr]
    assert detail["expectation"] == "expect_column_values_to_be_between"
    assert detail["unexpected_count"] > 0 and all(v < 0 for v in detail["sample_unexpected"])

    assert serving(platform) == expected(platform.events, {"approved"})  # type: ignore[attr-defined]
    rows = versions(platform)
    assert rows[1].state == registry.LIVE
    assert rows[2].state == registry.FAILED
    assert "expect_column_values_to_be_between" in (rows[2].error or "")
    assert len(swaps(platform)) == 1
    assert sensor_requests(platform) == []  # a failed candidate is not retried in a loop
    # found: a failed candidate's job kept running (a slot held, the log read, dead letters
    # written) until someone retired it; it is stopped with a savepoint to resume from
    assert flink.job_state(rows[2].flink_job_id or "") == "FINISHED"
    saved = (rows[2].checkpoint or {}).get("path")
    assert saved and (rows[2].checkpoint or {}).get("job_id") == rows[2].flink_job_id
    status = cli(platform, stack, "status", "daily_spend")
    output, _ = status.communicate(timeout=60)
    assert "v2" in output and "failed" in output and "expect_column_values_to_be_between" in output
    assert "candidate v2 failed: checks failed: expectations" in output
    assert "kappa-orch reprocess daily_spend --accept <check>" in output and "FINISHED" in output

    # found: the CLI printed Dagster's stack traces for a failed gate
    again = cli(platform, stack, "reprocess", "daily_spend", "--wait")
    output, _ = again.communicate(timeout=600)
    assert again.returncode == 1, output
    assert "Traceback" not in output and "Stack Trace" not in output, output
    assert "--accept expectations" in output
    assert f"v2 resumes from {saved}" in output  # gated again from where it stopped, not replayed

    # found: a failed candidate could only be retried with a new fingerprint, and a check
    # could not be waived. Structural checks cannot be accepted ...
    refused = cli(platform, stack, "reprocess", "daily_spend", "--wait", "--accept", "unique_primary_key")
    output, _ = refused.communicate(timeout=60)
    assert refused.returncode == 1 and "['unique_primary_key'] cannot be accepted" in output
    # ... a non-structural one can, with a reason: the candidate is gated again and swapped
    reason = "spend is negative from now on: refunds count against it"
    accepted = cli(
        platform, stack, "reprocess", "daily_spend", "--wait", "--accept", "expectations", "--reason", reason
    )
    output, _ = accepted.communicate(timeout=600)
    assert accepted.returncode == 0, output
    assert "check expectations: FAILED, accepted by" in output
    assert {(a, d, n, -c) for a, d, n, c in serving(platform)} == expected(platform.events, {"approved"})  # type: ignore[attr-defined]
    last = swaps(platform)[-1]
    assert (last["from_version"], last["to_version"]) == (1, 2)
    assert last["accepted"]["expectations"].endswith(f": {reason}")
    assert versions(platform)[2].state == registry.LIVE


def test_an_unreachable_flink_is_one_infrastructure_message(platform: Platform, stack: StackConfig) -> None:
    # found: the CLI printed Dagster's and Python's tracebacks for an unreachable service
    env = cli_env(
        platform, stack, KAPPA_FLINK_REST_URL="http://127.0.0.1:9", KAPPA_SQL_GATEWAY_URL="http://127.0.0.1:9"
    )
    done = subprocess.run(
        [KAPPA, "reprocess", "daily_spend", "--wait"], env=env, capture_output=True, text=True, timeout=300
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output and "Stack Trace" not in output, output
    assert "error (infrastructure): Flink did not answer" in output, output


def test_a_run_killed_during_catch_up_is_finished_by_running_again(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource, stack: StackConfig
) -> None:
    deploy_v1(platform, kafka, flink)
    platform.set_sql(
        "daily_spend", platform.pipelines()["daily_spend"].sql_text.replace(ORIGINAL, ALL_STATUSES)
    )
    first = cli(platform, stack, "reprocess", "daily_spend", "--wait")
    deadline = time.monotonic() + 120
    while versions(platform).get(2) is None or versions(platform)[2].state != registry.CATCHING_UP:
        assert first.poll() is None, first.communicate()[0]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert versions(platform)[2].state == registry.CATCHING_UP

    again = cli(platform, stack, "reprocess", "daily_spend", "--wait")
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output
    assert "taking over the reprocess claim" in output
    assert serving(platform) == expected(platform.events, {"approved", "declined"})  # type: ignore[attr-defined]
    rows = versions(platform)
    assert sorted(rows) == [1, 2] and rows[2].state == registry.LIVE
    assert [(s["from_version"], s["to_version"]) for s in swaps(platform)] == [(None, 1), (1, 2)]


def test_two_concurrent_requests_swap_once(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource, stack: StackConfig
) -> None:
    deploy_v1(platform, kafka, flink)
    platform.set_sql(
        "daily_spend", platform.pipelines()["daily_spend"].sql_text.replace(ORIGINAL, ALL_STATUSES)
    )
    runs = [cli(platform, stack, "reprocess", "daily_spend", "--wait") for _ in range(2)]
    outputs = [r.communicate(timeout=300)[0] for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outputs
    assert any("waiting for the reprocess run" in o for o in outputs)
    assert sorted(versions(platform)) == [1, 2]
    assert [(s["from_version"], s["to_version"]) for s in swaps(platform)] == [(None, 1), (1, 2)]


def test_rollback_and_retired_versions(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource, stack: StackConfig
) -> None:
    deploy_v1(platform, kafka, flink)
    changed = platform.set_sql(
        "daily_spend", platform.pipelines()["daily_spend"].sql_text.replace(ORIGINAL, ALL_STATUSES)
    )
    assert run(platform, changed, kafka, flink).success
    v1_rows = expected(platform.events, {"approved"})  # type: ignore[attr-defined]
    v2_rows = expected(platform.events, {"approved", "declined"})  # type: ignore[attr-defined]

    # found: a rollback between a reprocess's gate and its swap was undone a second later
    # by that swap. A reprocess holds the claim through its swap; a rollback waits for it
    in_flight = "run-elsewhere@another-host:1"
    claims.acquire(platform.warehouse, pipeline="daily_spend", owner=in_flight, fingerprint="f", log=print)
    rollback = cli(platform, stack, "rollback", "daily_spend")
    time.sleep(8)
    assert rollback.poll() is None and serving(platform) == v2_rows  # waiting, nothing moved
    claims.release(platform.warehouse, pipeline="daily_spend", owner=in_flight)
    output, _ = rollback.communicate(timeout=60)
    assert rollback.returncode == 0, output
    assert "waiting for the reprocess run run-elsewhere@another-host:1 to finish" in output
    assert serving(platform) == v1_rows
    assert swaps(platform)[-1]["reason"] == "rollback"
    forward = cli(platform, stack, "rollback", "daily_spend", "--to", "2")
    assert forward.wait(timeout=60) == 0
    assert serving(platform) == v2_rows

    # past its grace period, the retire sensor requests the retire job for v1, which retires it
    spec_file = platform.specs / "daily_spend.yaml"
    raw = yaml.safe_load(spec_file.read_text())
    raw["retire"] = {"grace": "1s"}
    spec_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    changed = platform.pipelines()["daily_spend"]
    time.sleep(1.5)
    v1_job = versions(platform)[1].flink_job_id or ""
    with build_sensor_context(resources={"warehouse": platform.warehouse}) as context:
        [request] = retire_sensor([changed])(context).run_requests  # type: ignore[union-attr]
    retired = retire_job([changed]).execute_in_process(
        run_config=request.run_config,
        resources={"flink": flink, "warehouse": platform.warehouse},
        instance=DagsterInstance.ephemeral(),
    )
    assert retired.success
    assert versions(platform)[1].state == registry.RETIRED
    assert flink.job_state(v1_job) == "CANCELED"
    with platform.warehouse.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('analytics.daily_spend__v1')")).scalar() is None
    with build_sensor_context(resources={"warehouse": platform.warehouse}) as context:
        assert not getattr(retire_sensor([changed])(context), "run_requests", None)
    refused = cli(platform, stack, "rollback", "daily_spend", "--to", "1")
    output, _ = refused.communicate(timeout=60)
    assert refused.returncode == 1
    assert "v1 of 'daily_spend' is retired" in output
    assert serving(platform) == v2_rows


def test_a_live_version_whose_job_was_lost_resumes_from_its_checkpoint(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource, stack: StackConfig
) -> None:
    deploy_v1(platform, kafka, flink)
    [v1] = versions(platform).values()
    time.sleep(6)  # let a checkpoint complete after the table matched
    flink.cancel(v1.flink_job_id or "")
    more = sample_events(5_000, seed=99, start_ms=1_767_225_600_000 + EVENTS * 60_000, step_ms=60_000)
    kafka.produce(platform.topic("payments.authorizations"), more.authorizations, key=lambda e: e["account"])  # type: ignore[index]

    # where it resumes from is what Flink's REST API says of the cancelled job
    result = run(platform, platform.pipelines()["daily_spend"], kafka, flink)
    assert result.success
    [deployed] = [
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if "action" in e.materialization.metadata
    ]
    assert deployed["action"].value == "redeploy"
    # the restored state counts the first events once and adds the new ones
    wait_serving(platform, expected(platform.events + more.authorizations, {"approved"}))  # type: ignore[attr-defined]
    [row] = versions(platform).values()
    assert row.state == registry.LIVE and row.flink_job_id != v1.flink_job_id
    restored = flink._call("GET", flink.rest_url, f"/jobs/{row.flink_job_id}/checkpoints")
    assert v1.flink_job_id in restored["latest"]["restored"]["external_path"]


def test_readers_see_one_whole_version_across_swaps(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource
) -> None:
    deploy_v1(platform, kafka, flink)
    changed = platform.set_sql(
        "daily_spend", platform.pipelines()["daily_spend"].sql_text.replace(ORIGINAL, ALL_STATUSES)
    )
    assert run(platform, changed, kafka, flink).success
    # both versions are caught up and no events arrive: each has one fixed answer
    answers = {}
    with platform.warehouse.connect() as conn:
        for version in (1, 2):
            answers[version] = tuple(conn.execute(text(f"{TOTALS}__v{version}")).one())
    assert answers[1] != answers[2]

    stop = threading.Event()
    seen: list[tuple[Any, ...]] = []
    errors: list[str] = []

    def reader() -> None:
        engine = create_engine(platform.warehouse_url)
        with engine.connect() as conn:
            while not stop.is_set():
                try:
                    seen.append(tuple(conn.execute(text(TOTALS)).one()))
                    conn.commit()
                except Exception as exc:
                    errors.append(repr(exc))
                    conn.rollback()
        engine.dispose()

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    swaps_done = 0
    for target in (1, 2, 1, 2, 1, 2):
        time.sleep(0.3)
        assert swap(changed, warehouse=platform.warehouse, to_version=target, reason="rollback").swapped
        swaps_done += 1
    time.sleep(0.3)
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert swaps_done == 6 and len(seen) > 50
    assert set(seen) <= {answers[1], answers[2]}
    assert set(seen) == {answers[1], answers[2]}

    # found: swaps made readers wait (DROP VIEW queued behind running reads, new reads
    # behind it). v2 joined the view when it passed its gate, so a swap between the two is
    # a registry update: it completes while a reader holds the view open in a transaction,
    # which a DDL on the view could not (it would wait for that reader)
    engine = create_engine(platform.warehouse_url)
    with engine.connect() as reader:
        assert tuple(reader.execute(text(TOTALS)).one()) == answers[2]  # the reader's lock is held
        done = threading.Event()
        swapper = threading.Thread(
            target=lambda: (
                swap(changed, warehouse=platform.warehouse, to_version=1, reason="rollback"),
                done.set(),
            )
        )
        swapper.start()
        swapper.join(timeout=60)
        assert done.is_set(), "the swap waited for a reader: it took a lock on the view"
        reader.commit()
        assert tuple(reader.execute(text(TOTALS)).one()) == answers[1]
    engine.dispose()
    with platform.warehouse.connect() as conn:
        view = conn.execute(text("SELECT pg_get_viewdef('analytics.daily_spend'::regclass)")).scalar_one()
    assert "daily_spend__v1" in view and "daily_spend__v2" in view and "UNION ALL" in view


def test_a_replay_is_refused_when_retention_took_the_history_it_needs(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource
) -> None:
    pipeline = platform.pipelines()["daily_spend"]
    assert pipeline.spec.start.retention_needed == "7d"
    topic = platform.topic("payments.authorizations")
    # the events were produced just now: after retention deleted the oldest, the topic
    # holds less than the 7 days the spec needs
    kafka.delete_records_before(topic, {p: 10 for p in kafka.end_offsets(topic)})
    jobs_before = len(flink.list_jobs())
    with pytest.raises(KappaError) as error:
        deploy(pipeline, kafka=kafka, flink=flink, warehouse=platform.warehouse)
    assert "a replay of 'daily_spend' needs 7d of history (start.retention_needed)" in error.value.problem
    assert f"topic '{topic}' partition 0: records before offset 10 were deleted by retention" in (
        error.value.problem
    )
    assert "retention.ms" in (error.value.fix or "")
    with platform.warehouse.begin() as conn:
        registry.migrate(conn)  # the failed deploy's transaction rolled back, the migration too
    assert versions(platform) == {}  # nothing written
    assert len(flink.list_jobs()) == jobs_before


def test_a_catch_up_timeout_fails_clearly_and_a_new_run_resumes_the_wait(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource
) -> None:
    deploy_v1(platform, kafka, flink)
    spec_file = platform.specs / "daily_spend.yaml"
    raw = yaml.safe_load(spec_file.read_text())
    raw["catch_up"]["timeout"] = "1s"  # not in the fingerprint: the same candidate either way
    spec_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    impatient = platform.set_sql(
        "daily_spend", platform.pipelines()["daily_spend"].sql_text.replace(ORIGINAL, ALL_STATUSES)
    )
    result = run(platform, impatient, kafka, flink)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = str(failure.event_specific_data.error)  # type: ignore[union-attr]
    assert "'daily_spend' did not catch up within 1s" in message
    assert "raise catch_up.timeout" in message
    # the alias stays; the candidate keeps running, and is not failed
    assert serving(platform) == expected(platform.events, {"approved"})  # type: ignore[attr-defined]
    candidate = versions(platform)[2]
    assert candidate.state == registry.CATCHING_UP
    assert flink.job_state(candidate.flink_job_id or "") == "RUNNING"

    raw["catch_up"]["timeout"] = "5m"
    spec_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    patient = platform.pipelines()["daily_spend"]
    assert run(platform, patient, kafka, flink).success  # resumes waiting on the same candidate
    rows = versions(platform)
    assert sorted(rows) == [1, 2] and rows[2].state == registry.LIVE
    assert rows[2].flink_job_id == candidate.flink_job_id
    assert serving(platform) == expected(platform.events, {"approved", "declined"})  # type: ignore[attr-defined]


def alias_columns(platform: Platform) -> list[str]:
    with platform.warehouse.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'analytics' AND table_name = 'daily_spend' ORDER BY ordinal_position"
            )
        )
        return [r[0] for r in rows]


def test_rollback_and_roll_forward_across_an_added_column(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource
) -> None:
    # found: `rollback --to 1` after a reprocess that added a column failed with
    # `column "<new column>" does not exist`, and a roll-forward with the old spec in
    # place served the new version without its new column
    deploy_v1(platform, kafka, flink)
    narrow = ["account", "spend_day", "authorizations", "spend_cents"]
    assert alias_columns(platform) == narrow
    spec_file = platform.specs / "daily_spend.yaml"
    old_yaml = spec_file.read_text()
    old_sql = platform.pipelines()["daily_spend"].sql_text
    raw = yaml.safe_load(old_yaml)
    raw["target"]["columns"].append({"name": "max_cents", "type": "BIGINT"})
    spec_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    wider = platform.set_sql(
        "daily_spend",
        old_sql.replace(
            "SUM(amount_cents) AS spend_cents",
            "SUM(amount_cents) AS spend_cents,\n  MAX(amount_cents) AS max_cents",
        ),
    )
    assert run(platform, wider, kafka, flink).success
    assert alias_columns(platform) == [*narrow, "max_cents"]

    # back to v1 with the wider spec in place: v1's own columns
    swap(wider, warehouse=platform.warehouse, to_version=1, reason="rollback")
    assert alias_columns(platform) == narrow
    assert serving(platform) == expected(platform.events, {"approved"})  # type: ignore[attr-defined]

    # forward to v2 with the old spec back in place: v2's own columns, max_cents included
    spec_file.write_text(old_yaml)
    old = platform.set_sql("daily_spend", old_sql)
    swap(old, warehouse=platform.warehouse, to_version=2, reason="rollback")
    assert alias_columns(platform) == [*narrow, "max_cents"]
    with platform.warehouse.connect() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM analytics.daily_spend WHERE max_cents > 0")).scalar_one()
            > 0
        )
