"""The stack manager's promises, checked with small real processes instead of servers."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kappa_orch.errors import StackError
from kappa_orch.stack import manager
from kappa_orch.stack.config import LOOPBACK, StackConfig
from kappa_orch.stack.jars import require_tool
from kappa_orch.stack.kafka import KafkaService, _new_cluster_id
from kappa_orch.stack.process import PidFile, pid_alive, spawn, wait_until
from kappa_orch.stack.service import Service, ServiceStatus


class SleeperService(Service):
    """A 'service' that is one sleeping process; `fail` makes its start-up die."""

    needs_jars = False

    def __init__(self, config: StackConfig, name: str, *, fail: bool = False) -> None:
        super().__init__(config)
        self.name = name
        self.fail = fail

    def ports(self) -> list[int]:
        return []

    def pid_files(self) -> dict[str, PidFile]:
        return {self.name: self.pid_file(self.name)}

    def start(self) -> None:
        code = "raise SystemExit(1)" if self.fail else "import time; time.sleep(60)"
        log = self.config.logs_dir / f"{self.name}.log"
        pid_file = self.pid_files()[self.name]
        pid = spawn([sys.executable, "-c", code], log=log, pid_file=pid_file)
        # ours once exec completed (before that the child shows the parent's environment)
        wait_until(
            lambda: not self.fail and pid_file.live_pid() == pid,
            service=self.name,
            timeout_s=10,
            log=log,
            pid=pid,
        )

    def status(self) -> ServiceStatus:
        state = "running" if self.live_pids() else "stopped"
        return ServiceStatus(self.name, state, "-", pids=self.live_pids())


class PairService(Service):
    """Two sleeping processes that can be started one by one (like Flink's JobManager and
    TaskManager); `fail_first` start-ups of `b` die; `healthy` is what status reports."""

    needs_jars = False
    restarts_parts = True

    def __init__(self, config: StackConfig, *, fail_first: int = 0, healthy: bool = True) -> None:
        super().__init__(config)
        self.name = "pair"
        self.fail_first = fail_first
        self.healthy = healthy
        self.starts: list[str] = []

    def ports(self) -> list[int]:
        return []

    def pid_files(self) -> dict[str, PidFile]:
        return {name: self.pid_file(f"pair-{name}") for name in ("a", "b")}

    def start(self) -> None:
        self.start_parts(["a", "b"])

    def start_parts(self, processes: list[str]) -> None:
        for name in processes:
            self.starts.append(name)
            failing = name == "b" and self.starts.count("b") <= self.fail_first
            code = "raise SystemExit(1)" if failing else "import time; time.sleep(60)"
            log = self.config.logs_dir / f"pair-{name}.log"
            pid_file = self.pid_files()[name]
            pid = spawn([sys.executable, "-c", code], log=log, pid_file=pid_file)
            wait_until(
                lambda f=failing, pf=pid_file, p=pid: not f and pf.live_pid() == p,  # type: ignore[misc]
                service=f"pair-{name}",
                timeout_s=10,
                log=log,
                pid=pid,
            )

    def status(self) -> ServiceStatus:
        running = len(self.live_pids()) == 2 and self.healthy
        return ServiceStatus(self.name, "running" if running else "unhealthy", "-", pids=self.live_pids())


@pytest.fixture
def config(tmp_path: Path) -> StackConfig:
    return StackConfig(home=tmp_path / "stack")


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def test_up_is_idempotent(config: StackConfig) -> None:
    one = SleeperService(config, "one")
    first = manager.up(config, report=lambda _: None, only=[one])
    messages: list[str] = []
    second = manager.up(config, report=messages.append, only=[one])
    try:
        assert first[0].pids == second[0].pids
        assert messages == [f"one: already running (pid {first[0].pids['one']})"]
    finally:
        one.stop()


def test_failed_up_leaves_nothing_half_started(config: StackConfig) -> None:
    good, bad = SleeperService(config, "good"), SleeperService(config, "bad", fail=True)
    with pytest.raises(StackError, match="bad exited during start-up"):
        manager.up(config, report=lambda _: None, only=[good, bad])
    assert good.live_pids() == {}
    assert not (config.pids_dir / "good.pid").exists()


def test_down_stops_only_what_up_started(config: StackConfig) -> None:
    one = SleeperService(config, "one")
    manager.up(config, report=lambda _: None, only=[one])
    pid = one.live_pids()["one"]
    unrelated = spawn(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        log=config.logs_dir / "unrelated.log",
        pid_file=PidFile(config.home / "elsewhere.pid", owner="someone-else"),
    )
    try:
        assert one.stop()
        assert not pid_alive(pid)
        assert pid_alive(unrelated)
    finally:
        PidFile(config.home / "elsewhere.pid", owner="someone-else").path.unlink()
        import os
        import signal

        os.kill(unrelated, signal.SIGKILL)
        os.waitpid(unrelated, 0)


def test_taken_port_is_reported_before_anything_starts(config: StackConfig, busy_port: int) -> None:
    taken = StackConfig(home=config.home, kafka_port=busy_port)
    with pytest.raises(StackError) as error:
        manager.preflight(taken, [KafkaService(taken)])
    assert f"{busy_port} (for kafka)" in error.value.problem
    assert f"ss -ltnp 'sport = :{busy_port}'" in (error.value.fix or "")
    assert not taken.pids_dir.exists()


def test_missing_tool_says_how_to_install_it() -> None:
    with pytest.raises(StackError) as error:
        require_tool("no-such-tool-kappa", "no-such-package")
    assert "`no-such-tool-kappa` was not found" in error.value.problem
    assert "apt-get install -y no-such-package" in (error.value.fix or "")


def test_kafka_cluster_ids_are_valid() -> None:
    for _ in range(200):
        cluster_id = _new_cluster_id()
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")


def test_up_restarts_only_the_dead_process(config: StackConfig) -> None:
    import os
    import signal

    pair = PairService(config)
    manager.up(config, report=lambda _: None, only=[pair])
    try:
        before = pair.live_pids()
        os.kill(before["b"], signal.SIGKILL)
        os.waitpid(before["b"], 0)
        messages: list[str] = []
        [status] = manager.up(config, report=messages.append, only=[pair])
        assert status.pids["a"] == before["a"]  # the survivor kept running
        assert status.pids["b"] != before["b"]
        assert pair.starts == ["a", "b", "b"]
        assert "pair: b not running; starting only that" in messages
    finally:
        pair.stop()


def test_a_failed_start_is_tried_again_before_it_is_given_up(config: StackConfig) -> None:
    flaky = PairService(config, fail_first=1)
    messages: list[str] = []
    [status] = manager.up(config, report=messages.append, only=[flaky])
    try:
        assert status.state == "running"
        assert any("start failed" in m and "trying again" in m for m in messages)
    finally:
        flaky.stop()
    broken = PairService(config, fail_first=5)
    with pytest.raises(StackError, match="pair-b exited during start-up"):
        manager.up(config, report=lambda _: None, only=[broken])
    assert broken.live_pids() == {}


def test_up_fails_unless_every_service_is_healthy(config: StackConfig) -> None:
    sick = PairService(config, healthy=False)
    try:
        with pytest.raises(StackError, match="the stack is not healthy: pair unhealthy"):
            manager.up(config, report=lambda _: None, only=[sick])
    finally:
        sick.stop()
