"""Second Flink clusters beside the test stack (their own folders and ports, the same
Kafka and PostgreSQL) for tests that kill parts of a cluster, and what they share."""

from __future__ import annotations

import os
import shutil
import signal
import socket
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
from tests.integration.platform import produce_authorizations, run_reprocess
from tests.integration.served import expected, wait_exact


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
