"""A Flink cluster that loses its parts (issue 15, points 3 and its bad input).

Beside the test stack, a second Flink cluster (its own folder and ports, the same Kafka
and PostgreSQL) keeps checkpoints and savepoints in a bucket of moto's S3 server (from
PyPI), through Flink's S3 filesystem plugin (from Maven Central): no local filesystem
assumed.

- A live version's job checkpoints there; its JobManager and TaskManager are killed with
  -9, so the restarted cluster knows no job; `kappa-orch repair` resumes the version from
  the checkpoint path the observation sensor recorded in the registry (what Flink's REST
  API had reported), never from a listing of the bucket, and the alias ends exact.
- A store that refuses writes is refused by `stack up` before anything starts.
- A TaskManager that does not come back: the job stays alive (restarting, its tasks
  waiting for slots) and its alias serves stale rows, so `flink_job_running` turns red
  with the cause and the fix; once the TaskManager is back it passes and the alias is
  exact again."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import AssetCheckEvaluation

from assets.sample_events import sample_events
from kappa_orch.dagster.health import JOB_RUNNING_CHECK
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.engine.protocol import ACTIVE_JOB_STATES
from kappa_orch.errors import StackError
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack import manager
from kappa_orch.stack.config import StackConfig
from kappa_orch.stack.flink import FlinkService
from kappa_orch.stack.object_store import check_writable
from tests.integration.clusters import (
    checkpointed,
    free_port,
    go_live,
    kill,
    lose_the_jobmanager,
    repaired,
    second_cluster,
)
from tests.integration.platform import (
    isolated_platform,
    observe_once,
)
from tests.integration.served import expected, versions, wait_exact

pytestmark = pytest.mark.integration

BUCKET = "kappa-checkpoints"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "kappa-test", "AWS_SECRET_ACCESS_KEY": "kappa-test-secret"}
EVENTS = 20_000


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server on loopback with an empty bucket; its URL. Stopped by its pid."""
    import boto3

    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **_keys())
        deadline = time.monotonic() + 60
        while True:
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception:
                assert time.monotonic() < deadline and server.poll() is None, "moto's S3 server did not start"
                time.sleep(0.5)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _keys() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }


@pytest.fixture(scope="module")
def s3_flink(
    stack: StackConfig, s3: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[StackConfig, FlinkResource]]:
    """A second Flink cluster whose checkpoints and savepoints live in the bucket (its
    processes get the store's credentials from their environment)."""
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    storage = {
        "checkpoint_uri": f"s3://{BUCKET}/checkpoints",
        "savepoint_uri": f"s3://{BUCKET}/savepoints",
        "s3_endpoint": s3,
    }
    try:
        with second_cluster(stack, tmp_path_factory.mktemp("s3-flink"), **storage) as cluster:
            yield cluster
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _bucket_keys(endpoint: str, prefix: str) -> list[str]:
    """What the bucket holds under prefix (the test looks; kappa_orch never lists it)."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **_keys())
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


def test_a_job_restores_from_the_object_store_after_its_cluster_died(
    stack: StackConfig,
    kafka: KafkaResource,
    s3: str,
    s3_flink: tuple[StackConfig, FlinkResource],
    tmp_path: Path,
) -> None:
    config, flink = s3_flink
    with isolated_platform(stack, kafka, flink, tmp_path, only=["daily_spend"]) as platform:
        events = go_live(platform, kafka, flink, EVENTS, seed=11)
        [v1] = versions(platform, "daily_spend").values()
        old_job = v1.flink_job_id or ""

        # the job checkpoints into the bucket; Flink's REST API names where
        time.sleep(6)
        checkpoint = flink.last_checkpoint(old_job)
        assert checkpoint is not None and checkpoint.external_path
        assert checkpoint.external_path.startswith(f"s3://{BUCKET}/checkpoints/{old_job}/chk-")
        key = checkpoint.external_path.removeprefix(f"s3://{BUCKET}/") + "/_metadata"
        assert key in _bucket_keys(s3, f"checkpoints/{old_job}/")

        # the observation sensor records the newest one in the registry
        observe_once(platform, kafka, flink, None)
        recorded = versions(platform, "daily_spend")[1].checkpoint or {}
        assert recorded["job_id"] == old_job and recorded["path"].startswith(f"s3://{BUCKET}/checkpoints/")

        # the whole cluster dies; events keep arriving meanwhile
        kill(config, "flink-taskmanager")
        kill(config, "flink-jobmanager")
        more = sample_events(5_000, seed=12, start_ms=1_767_225_600_000 + EVENTS * 60_000, step_ms=60_000)
        kafka.produce(
            platform.topic("payments.authorizations"), more.authorizations, key=lambda e: e["account"]
        )  # type: ignore[index]
        platform.events = events + more.authorizations  # type: ignore[attr-defined]
        manager.up(config, only=[FlinkService(config)])  # starts only the dead processes
        assert flink.job_state(old_job) == "UNKNOWN"  # a JobManager without HA forgot it

        said = repaired(platform, config)
        assert f"resumes from {recorded['path']} (as told by the registry" in said

        new_job = versions(platform, "daily_spend")[1].flink_job_id or ""
        assert new_job != old_job and flink.job_state(new_job) in ACTIVE_JOB_STATES
        restored = flink._call("GET", flink.rest_url, f"/jobs/{new_job}/checkpoints")["latest"]["restored"]
        assert restored["external_path"] == recorded["path"]
        # the restored state counts the first events once and the new ones too
        wait_exact(platform, "daily_spend", expected(platform, "daily_spend"))


@pytest.fixture(scope="module")
def file_flink(
    stack: StackConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[StackConfig, FlinkResource]]:
    """A second Flink cluster with checkpoints and savepoints in its own folder (file://)."""
    with second_cluster(stack, tmp_path_factory.mktemp("file-flink")) as cluster:
        yield cluster


@pytest.mark.parametrize("cluster", ["s3_flink", "file_flink"])
def test_a_lost_jobmanager_stack_up_waits_for_its_taskmanager_and_repair_resumes_the_job(
    stack: StackConfig,
    kafka: KafkaResource,
    cluster: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """Found: after a JobManager kill -9, `stack up` exited 1 before the surviving
    TaskManager registered again, and the first `repair` said "0 of 0 slots free; held by:
    jobs kappa_orch does not know". Checkpoints on object storage and in files; no HA."""
    config, flink = request.getfixturevalue(cluster)
    with isolated_platform(stack, kafka, flink, tmp_path, only=["daily_spend"]) as platform:
        events, old_job, recorded = checkpointed(platform, kafka, flink, seed=31)
        storage = config.checkpoints.split("://", 1)[1].strip("/")  # bucket/prefix, or a folder
        assert f"{storage}/{old_job}/chk-" in recorded["path"]
        # `stack up` starts the JobManager and returns once the old TaskManager registered
        lose_the_jobmanager(config, platform, kafka, events, seed=32)  # the TaskManager lives on
        # registered (its slots counted; the one the lost job held comes back once the
        # TaskManager gives it up)
        assert flink.slots()[1] == config.taskmanager_slots
        assert flink.job_state(old_job) == "UNKNOWN"  # a JobManager without HA forgot it

        said = repaired(platform, config)
        assert "held by" not in said and f"resumes from {recorded['path']} (as told by the registry" in said
        new_job = versions(platform, "daily_spend")[1].flink_job_id or ""
        restored = flink._call("GET", flink.rest_url, f"/jobs/{new_job}/checkpoints")["latest"]["restored"]
        assert restored["external_path"] == recorded["path"]
        wait_exact(platform, "daily_spend", expected(platform, "daily_spend"))


def _job_check(
    platform: Any, kafka: KafkaResource, flink: FlinkResource, cursor: str | None
) -> tuple[Any, str | None]:
    """The flink_job_running evaluation of one observation tick (None: unchanged)."""
    events, cursor = observe_once(platform, kafka, flink, cursor)
    checks = [e for e in events if isinstance(e, AssetCheckEvaluation) and e.check_name == JOB_RUNNING_CHECK]
    return (checks[0] if checks else None), cursor


def _await_check(
    platform: Any,
    kafka: KafkaResource,
    flink: FlinkResource,
    cursor: str | None,
    *,
    passed: bool,
    saying: str = "",
) -> tuple[Any, str | None]:
    deadline = time.monotonic() + 300
    while True:
        check, cursor = _job_check(platform, kafka, flink, cursor)
        if check is not None and check.passed is passed and saying in (check.description or ""):
            return check, cursor
        assert time.monotonic() < deadline, f"flink_job_running never turned {'green' if passed else 'red'}"
        time.sleep(5)


def test_a_taskmanager_that_does_not_come_back_turns_the_job_check_red_with_the_fix(
    stack: StackConfig,
    kafka: KafkaResource,
    s3_flink: tuple[StackConfig, FlinkResource],
    tmp_path: Path,
) -> None:
    config, flink = s3_flink
    with isolated_platform(stack, kafka, flink, tmp_path, only=["daily_spend"]) as platform:
        spec = platform.specs / "daily_spend.yaml"
        raw = yaml.safe_load(spec.read_text())
        raw["health"] = {**raw.get("health", {}), "max_stalled": "15s"}
        spec.write_text(yaml.safe_dump(raw, sort_keys=False))
        events = go_live(platform, kafka, flink, 5_000, seed=21)
        check, cursor = _await_check(platform, kafka, flink, None, passed=True)

        kill(config, "flink-taskmanager")  # and it does not come back
        more = sample_events(2_000, seed=22, start_ms=1_767_225_600_000 + 5_000 * 60_000, step_ms=60_000)
        kafka.produce(
            platform.topic("payments.authorizations"), more.authorizations, key=lambda e: e["account"]
        )  # type: ignore[index]
        platform.events = events + more.authorizations  # type: ignore[attr-defined]
        # red at once (its read position stands still while records wait), then, once Flink
        # has noticed the lost TaskManager, with the cause and the fix
        stalled = "has processed nothing for"
        check, cursor = _await_check(platform, kafka, flink, cursor, passed=False, saying=stalled)
        summary = check.description or ""
        assert "v1 is live but its Flink job" in summary and stalled in summary
        assert "(bound 15s: health.max_stalled)" in summary
        assert "`kappa-orch stack up`" in summary, summary  # the fix names the missing part

        manager.up(config, only=[FlinkService(config)])  # the TaskManager is back
        check, cursor = _await_check(platform, kafka, flink, cursor, passed=True)
        wait_exact(platform, "daily_spend", expected(platform, "daily_spend"))


def test_a_store_that_refuses_writes_is_named_before_anything_starts(
    stack: StackConfig, s3: str, s3_flink: tuple[StackConfig, FlinkResource], tmp_path: Path
) -> None:
    with pytest.raises(StackError) as refused:
        check_writable("s3://no-such-bucket/checkpoints", s3_endpoint=s3)
    assert (
        "NoSuchBucket" in refused.value.problem and "create the bucket 'no-such-bucket'" in refused.value.fix
    )

    gone = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StackError) as unreachable:
        check_writable(f"s3://{BUCKET}/checkpoints", s3_endpoint=gone)
    assert "did not answer" in unreachable.value.problem and gone in unreachable.value.problem

    # `stack up` asks first: nothing of the cluster is started
    config = replace(
        s3_flink[0],
        home=tmp_path,
        flink_rest_port=free_port(),
        checkpoint_uri="s3://no-such-bucket/checkpoints",
    )
    (tmp_path / "jars").symlink_to(stack.jars_dir)
    service = FlinkService(config)
    with pytest.raises(StackError, match="NoSuchBucket"):
        manager.up(config, only=[service])
    assert service.live_pids() == {}
