"""Health you can see, on the real stack: the four checks on the versions asset pass for a
healthy pipeline, say which service is out (and since when) while Flink does not answer
instead of raising, come back green, and can be executed from Dagster; the live input
balance is observed each tick (found: it was a snapshot from the gate, read as current)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetCheckEvaluation,
    AssetObservation,
    AssetSelection,
    DagsterInstance,
    Definitions,
    build_sensor_context,
    define_asset_job,
)

from assets.sample_events import sample_events
from kappa_orch import health_checks, version_key
from kappa_orch.dagster.answers import STUCK_AFTER_S
from kappa_orch.dagster.platform_page import platform_page_sensor
from kappa_orch.dagster.stream_checks import DESCRIPTIONS
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.registry import store as registry
from kappa_orch.resources.alerts import AlertResource
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack.config import StackConfig
from tests.integration.platform import (
    KAPPA,
    cli_env,
    isolated_platform,
    observe_once,
    produce_authorizations,
    resources_for,
)
from tests.integration.receivers import Receiver, receiving

pytestmark = pytest.mark.integration
EVENTS = 5_000
DEAD_FLINK = FlinkResource(rest_url="http://127.0.0.1:9", sql_gateway_url="http://127.0.0.1:9")


def checks(events: list[object]) -> dict[str, AssetCheckEvaluation]:
    return {e.check_name: e for e in events if isinstance(e, AssetCheckEvaluation)}


def test_health_checks_follow_the_jobs_and_report_an_outage(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> None:
    with isolated_platform(stack, kafka, flink, tmp_path, only=["daily_spend"]) as platform:
        events = sample_events(EVENTS).authorizations
        produce_authorizations(platform, kafka, events, event_timestamps=True)
        done = subprocess.run(
            [KAPPA, "deploy", "daily_spend"], env=cli_env(platform, stack), capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
        with registry.session(platform.warehouse) as conn:
            [row] = registry.pipeline_versions(conn, "daily_spend")
        job_name = flink._call("GET", flink.rest_url, f"/jobs/{row.flink_job_id}")["name"]
        with receiving(Receiver()) as pager:
            # issue 29, point 2: the sensor's verdicts go to a real receiver (PagerDuty's API)
            alerts = AlertResource(
                receivers=f"pagerduty=KEY@http://127.0.0.1:{pager.port}/v2/enqueue", deployment="it"
            )
            healthy, cursor = observe_once(platform, kafka, flink, None, alerts)
            during, cursor = observe_once(platform, kafka, DEAD_FLINK, cursor, alerts)
            _, cursor = observe_once(platform, kafka, DEAD_FLINK, cursor, alerts)
            after, cursor = observe_once(platform, kafka, flink, cursor, alerts)
        pipeline = platform.pipelines()["daily_spend"]
        page = platform_page_sensor([pipeline])
        with build_sensor_context(resources=resources_for(kafka, flink, platform.warehouse)) as context:
            [platform_row] = page(context).asset_events[0].metadata["pipelines"].value.records  # type: ignore[union-attr]
        defs = Definitions(
            asset_checks=health_checks([pipeline]),
            jobs=[define_asset_job("health", selection=AssetSelection.all_asset_checks())],
            resources=resources_for(kafka, flink, platform.warehouse),
        )
        executed = defs.resolve_job_def("health").execute_in_process(instance=DagsterInstance.ephemeral())

    # found: two deployments on one cluster had jobs of the same names
    assert job_name == f"{flink.deployment}/kappa:daily_spend:v1"  # the deployment (this worker's) first
    first = checks(healthy)
    assert {"flink_job_running", "lag_within_bounds", "checkpoint_fresh"} <= set(first)
    assert all(e.passed for e in first.values()), {k: e.description for k, e in first.items()}
    # the live version's balance as it is now: every record read, parsed or dead-lettered
    [observed] = [
        e for e in healthy if isinstance(e, AssetObservation) and e.asset_key == version_key(pipeline.spec)
    ]
    metadata = {k: v.value for k, v in observed.metadata.items()}
    assert metadata["input_records"] == EVENTS
    assert 0 <= metadata["dead_lettered"] < EVENTS

    # Flink does not answer: the checks that need it fail and say so, the sensor does not raise
    down = checks(during)
    for name in ("flink_job_running", "checkpoint_fresh"):
        assert not down[name].passed
        assert "not observed: Flink not reachable since" in (down[name].description or "")
    assert "lag_within_bounds" not in down  # Kafka answered, its verdict did not change

    back = checks(after)
    assert back["flink_job_running"].passed and back["checkpoint_fresh"].passed
    # paged once per failing check while Flink was away (not again on its second tick), and
    # resolved once each when it answered again
    failing = sorted(name for name, e in down.items() if not e.passed)
    told = sorted((m["event_action"], m["dedup_key"].rsplit("/", 1)[-1]) for m in pager.received)
    assert told == sorted((action, name) for action in ("trigger", "resolve") for name in failing), told
    assert {m["payload"]["component"] for m in pager.received if m["event_action"] == "trigger"} == {
        "daily_spend"
    }

    # one page for the platform: the pipeline's row of `status` (issue 29, point 3)
    assert platform_row.data["pipeline"] == "daily_spend" and platform_row.data["health"] == "in sync"
    assert platform_row.data["live"] == "v1"

    # executed from Dagster: every check runs and passes
    results = executed.get_asset_check_evaluations()
    assert sorted(r.check_name for r in results) == sorted(DESCRIPTIONS)
    by_name = {r.check_name: r for r in results}
    for name in ("flink_job_running", "lag_within_bounds", "checkpoint_fresh"):
        assert by_name[name].passed, by_name[name].description


def test_a_deleted_dead_letter_topic_is_named_at_once_and_repaired(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> None:
    # found: with its dead-letter topic deleted, a live job's letters blocked, checkpoints
    # failed and valid events stopped while status said "in sync" for minutes
    with isolated_platform(stack, kafka, flink, tmp_path, only=["daily_spend"]) as platform:
        produce_authorizations(platform, kafka, sample_events(EVENTS).authorizations, event_timestamps=True)
        env = cli_env(platform, stack)
        done = subprocess.run([KAPPA, "deploy", "daily_spend"], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        letters = platform.dead_letter_topic("daily_spend")
        healthy, cursor = observe_once(platform, kafka, flink, None)
        assert checks(healthy)["flink_job_running"].passed

        kafka.delete_topic(letters)
        topic = platform.topic("payments.authorizations")
        kafka.produce(topic, [b"{not json", b"[1]", b"{broken"], key=lambda _: "k")
        broken, cursor = observe_once(platform, kafka, flink, cursor)
        verdict = checks(broken)["flink_job_running"]
        assert not verdict.passed
        assert f"the dead-letter topic {letters} is missing (deleted?): v1 cannot write dead letters" in (
            verdict.description or ""
        )
        assert "kappa-orch repair daily_spend" in (verdict.description or "")
        status = subprocess.run([KAPPA, "status", "daily_spend"], env=env, capture_output=True, text=True)
        assert "DEGRADED" in status.stdout and f"the dead-letter topic {letters} is missing" in status.stdout
        # valid events keep arriving, nothing is read: one tick later the job is named stuck
        kafka.produce(topic, sample_events(180, seed=5, id_prefix="late").authorizations, key=lambda _: "k")
        time.sleep(STUCK_AFTER_S + 2)
        stuck, cursor = observe_once(platform, kafka, flink, cursor)
        description = checks(stuck)["flink_job_running"].description or ""
        assert (
            "v1 read nothing for " in description
            and "records wait (its committed offsets stood still)" in (description)
        )

        repaired = subprocess.run([KAPPA, "repair", "daily_spend"], env=env, capture_output=True, text=True)
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        assert f"created dead-letter topic {letters}" in repaired.stdout + repaired.stderr
        # the job writes its letters again: the three broken events arrive
        deadline = time.monotonic() + 180
        written: list[Any] = []
        while len(written) < 3 and time.monotonic() < deadline:
            written = kafka.consume(letters, max_records=10, timeout_s=5)
        assert len(written) >= 3
        # green again once its read position moves (its offsets are committed at checkpoints)
        deadline = time.monotonic() + 60
        verdict = None
        while time.monotonic() < deadline and not (verdict is not None and verdict.passed):
            after, cursor = observe_once(platform, kafka, flink, cursor)
            verdict = checks(after).get("flink_job_running", verdict)
            time.sleep(2)
        assert verdict is not None and verdict.passed, verdict
