"""Second Flink clusters beside the test stack (their own folders and ports, the same
Kafka and PostgreSQL) for tests that kill parts of a cluster, and what they share."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from assets.sample_events import sample_events
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack import manager
from kappa_orch.stack.config import StackConfig
from kappa_orch.stack.flink import FlinkService
from kappa_orch.stack.process import PidFile
from tests.integration.platform import KAPPA, cli_env, observe_once, produce_authorizations, run_reprocess
from tests.integration.served import expected, versions, wait_exact


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def second_cluster(
    stack: StackConfig, home: Path, **storage: Any
) -> Iterator[tuple[StackConfig, FlinkResource]]:
    """A second Flink cluster beside the test stack (its own folder and ports, the same
    Kafka and PostgreSQL), with `storage` (StackConfig's checkpoint and savepoint
    settings; none: folders under its home). Stopped by its pids."""
    (home / "jars").symlink_to(stack.jars_dir)
    # one deployment, one job key: the orchestrator derives the job roles' passwords with
    # the test stack's key, so this cluster's sinks must hold the same
    (home / "flink").mkdir()
    shutil.copy2(stack.job_key_file, home / "flink" / "job-key")
    config = replace(
        stack,
        home=home,
        taskmanagers=1,
        flink_rest_port=free_port(),
        flink_rpc_port=free_port(),
        sql_gateway_port=free_port(),
        **storage,
    )
    service = FlinkService(config)
    try:
        manager.up(config, only=[service])
        yield config, config.platform().resources()["flink"]
    finally:
        service.stop()
        if config.flink_dir.is_symlink():  # placed under /var/tmp (a private temporary folder)
            shutil.rmtree(config.flink_dir.resolve().parent, ignore_errors=True)


def go_live(platform: Any, kafka: KafkaResource, flink: FlinkResource, count: int, *, seed: int) -> list[Any]:
    """daily_spend live and exact over `count` fresh events on this cluster; the events."""
    events = sample_events(count, seed=seed, step_ms=60_000).authorizations
    produce_authorizations(platform, kafka, events, event_timestamps=False)
    assert run_reprocess(platform, platform.pipelines()["daily_spend"], kafka, flink).success
    wait_exact(platform, "daily_spend", expected(platform, "daily_spend"))
    return events


def kill(config: StackConfig, process: str) -> None:
    pid_file = PidFile(config.pids_dir / f"{process}.pid", str(config.home))
    pid = pid_file.live_pid()
    assert pid is not None, f"{process} is not running"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while pid_file.live_pid() is not None:
        assert time.monotonic() < deadline, f"{process} outlived SIGKILL"
        time.sleep(0.2)


def checkpointed(
    platform: Any, kafka: KafkaResource, flink: FlinkResource, *, seed: int
) -> tuple[list[Any], str, dict[str, Any]]:
    """daily_spend live and exact over 5,000 events, its job checkpointed and the
    checkpoint recorded by the observation sensor: (the events, the job id, the record)."""
    events = go_live(platform, kafka, flink, 5_000, seed=seed)
    [v1] = versions(platform, "daily_spend").values()
    job = v1.flink_job_id or ""
    deadline = time.monotonic() + 60
    while flink.last_checkpoint(job) is None:
        assert time.monotonic() < deadline, "the job never completed a checkpoint"
        time.sleep(2)
    observe_once(platform, kafka, flink, None)
    recorded = versions(platform, "daily_spend")[1].checkpoint or {}
    assert recorded["job_id"] == job
    return events, job, recorded


def lose_the_jobmanager(
    config: StackConfig, platform: Any, kafka: KafkaResource, events: list[Any], *, seed: int
) -> None:
    """The JobManager killed with -9 (the rest of the cluster lives on); 2,000 more events
    arrive meanwhile (the oracle's too); `stack up` starts only the JobManager again and
    returns once the TaskManager registered with it."""
    kill(config, "flink-jobmanager")
    more = sample_events(2_000, seed=seed, start_ms=1_767_225_600_000 + 5_000 * 60_000, step_ms=60_000)
    kafka.produce(platform.topic("payments.authorizations"), more.authorizations, key=lambda e: e["account"])  # type: ignore[index]
    platform.events = events + more.authorizations
    manager.up(config, only=[FlinkService(config)])


def repaired(platform: Any, config: StackConfig) -> str:
    """`kappa-orch repair daily_spend` against this cluster: what it said (exit 0 asserted)."""
    done = subprocess.run(
        [KAPPA, "repair", "daily_spend"],
        env=cli_env(platform, config),
        capture_output=True,
        text=True,
        timeout=600,
    )
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    return said
