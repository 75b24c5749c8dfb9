"""The Kappa reprocess on the real stack: sensor -> candidate -> catch-up -> gate -> swap;
a failing gate; a run killed during catch-up; concurrent requests; history that is gone;
a catch-up that times out. Rollbacks and readers across swaps: test_rollback.py."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.errors import KappaError
from kappa_orch.lifecycle.deploy import deploy
from kappa_orch.lifecycle.services import Services
from kappa_orch.registry import store as registry
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack.config import StackConfig
from tests.integration.daily_spend import (
    cli,
    daily_spend_platform,
    deploy_v1,
    expected,
    run,
    sensor_requests,
    serving,
    swaps,
    versions,
)
from tests.integration.platform import (
    ALL_STATUSES,
    KAPPA,
    ORIGINAL,
    Platform,
    cli_env,
    own_jobs,
)

pytestmark = pytest.mark.integration

NEGATIVE = "SUM(amount_cents) AS spend_cents"


@pytest.fixture
def platform(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> Iterator[Platform]:
    with daily_spend_platform(stack, kafka, flink, tmp_path) as platform:
        yield platform


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
        "derive_parity": True,  # a filter before the aggregate: replayed, nothing derived
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


def test_a_replay_is_refused_when_retention_took_the_history_it_needs(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource
) -> None:
    pipeline = platform.pipelines()["daily_spend"]
    assert pipeline.spec.start.retention_needed == "7d"
    topic = platform.topic("payments.authorizations")
    # the events were produced just now: after retention deleted the oldest, the topic
    # holds less than the 7 days the spec needs
    kafka.delete_records_before(topic, {p: 10 for p in kafka.end_offsets(topic)})
    jobs_before = own_jobs(flink)
    with pytest.raises(KappaError) as error:
        deploy(pipeline, Services(kafka, flink, platform.warehouse))
    assert "a replay of 'daily_spend' needs 7d of history (start.retention_needed)" in error.value.problem
    assert f"topic '{topic}' partition 0: records before offset 10 were deleted by retention" in (
        error.value.problem
    )
    assert "retention.ms" in (error.value.fix or "")
    with platform.warehouse.begin() as conn:
        registry.migrate(conn)  # the failed deploy's transaction rolled back, the migration too
    assert versions(platform) == {}  # nothing written
    assert own_jobs(flink) == jobs_before


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
