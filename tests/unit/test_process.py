"""Pid files, start-up waits and stops, on real short-lived processes (no servers)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from kappa_orch.errors import StackError
from kappa_orch.stack.process import PidFile, pid_alive, spawn, stop_pid, tail, wait_until


def test_spawned_process_is_ours_and_stops(tmp_path: Path) -> None:
    pid_file = PidFile(tmp_path / "sleep.pid", owner=str(tmp_path))
    pid = spawn(["sleep", "30"], log=tmp_path / "sleep.log", pid_file=pid_file)
    # until exec completes the child still shows the parent's environment
    wait_until(lambda: pid_file.live_pid() == pid, service="sleep", timeout_s=5, log=tmp_path / "sleep.log")
    assert stop_pid(pid_file, timeout_s=5)
    assert not pid_alive(pid)
    assert not pid_file.path.exists()


def test_what_a_stopped_script_left_running_in_its_session_is_stopped_too(tmp_path: Path) -> None:
    # found: the HA cluster's zookeeper.sh runs its JVM as a child (no exec); stopping the
    # script's pid left the JVM running, orphaned, after every `stack down`
    pid_file = PidFile(tmp_path / "script.pid", owner=str(tmp_path))
    child_file = tmp_path / "child.pid"
    script = f"sleep 300 & echo $! > {child_file}; wait"
    spawn(["bash", "-c", script], log=tmp_path / "script.log", pid_file=pid_file)
    wait_until(child_file.exists, service="script", timeout_s=5, log=tmp_path / "script.log")
    wait_until(
        lambda: child_file.read_text().strip() != "",
        service="script",
        timeout_s=5,
        log=tmp_path / "script.log",
    )
    child = int(child_file.read_text())
    assert pid_alive(child)
    assert stop_pid(pid_file, timeout_s=5)
    assert not pid_alive(child)


def test_pid_file_of_another_process_is_stale_and_never_signalled(tmp_path: Path) -> None:
    # our own pid: alive, but its environment lacks the stack's owner mark
    pid_file = PidFile(tmp_path / "stale.pid", owner=str(tmp_path))
    pid_file.write(os.getpid())
    assert pid_file.live_pid() is None
    assert stop_pid(pid_file) is False
    assert pid_alive(os.getpid())
    assert not pid_file.path.exists()


def test_owner_mark_distinguishes_two_stacks(tmp_path: Path) -> None:
    mine = PidFile(tmp_path / "a.pid", owner="/stack/a")
    pid = spawn(["sleep", "30"], log=tmp_path / "a.log", pid_file=mine)
    other = PidFile(tmp_path / "a.pid", owner="/stack/b")
    try:
        wait_until(lambda: mine.live_pid() == pid, service="sleep", timeout_s=5, log=tmp_path / "a.log")
        assert other.live_pid() is None
        assert mine.live_pid() == pid
    finally:
        stop_pid(mine, timeout_s=5)


def test_garbage_pid_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "junk.pid"
    path.write_text("not a pid\n")
    assert PidFile(path, owner="x").live_pid() is None


def test_service_dying_during_start_up_names_the_log(tmp_path: Path) -> None:
    log = tmp_path / "dies.log"
    pid_file = PidFile(tmp_path / "dies.pid", owner=str(tmp_path))
    pid = spawn(
        [sys.executable, "-c", "print('bind failed: address in use'); raise SystemExit(3)"],
        log=log,
        pid_file=pid_file,
    )
    with pytest.raises(StackError) as error:
        wait_until(lambda: False, service="demo", timeout_s=20, log=log, pid=pid)
    message = str(error.value)
    assert "demo exited during start-up" in message
    assert str(log) in message
    assert "bind failed: address in use" in message


def test_start_up_timeout_says_how_long_and_where_to_look(tmp_path: Path) -> None:
    log = tmp_path / "slow.log"
    log.write_text("still warming up\n")
    with pytest.raises(StackError) as error:
        wait_until(lambda: False, service="slow", timeout_s=0.3, log=log)
    assert "did not become ready within 0s" in str(error.value)
    assert "still warming up" in str(error.value)
    assert "--timeout" in (error.value.fix or "")


def test_tail_of_missing_log(tmp_path: Path) -> None:
    assert "no log at" in tail(tmp_path / "missing.log")


def test_a_process_that_outlasts_its_grace_gets_the_next_signal(tmp_path: Path) -> None:
    # as PostgreSQL with connected sinks: SIGTERM (smart shutdown) is noted but does not
    # stop it; SIGINT (fast shutdown) after the grace does
    seen = tmp_path / "signals"
    program = (
        "import signal, sys, time\n"
        f"seen = open({str(seen)!r}, 'a', buffering=1)\n"
        "signal.signal(signal.SIGTERM, lambda *_: seen.write('TERM\\n'))\n"
        "def fast(*_):\n"
        "    seen.write('INT\\n'); sys.exit(0)\n"
        "signal.signal(signal.SIGINT, fast)\n"
        "seen.write('up\\n')\n"
        "while True: time.sleep(0.1)\n"
    )
    pid_file = PidFile(tmp_path / "pg.pid", owner=str(tmp_path))
    pid = spawn([sys.executable, "-c", program], log=tmp_path / "pg.log", pid_file=pid_file)
    wait_until(
        lambda: seen.exists() and "up" in seen.read_text(),
        service="pg",
        timeout_s=10,
        log=tmp_path / "pg.log",
    )
    assert stop_pid(pid_file, sig=signal.SIGINT, grace=(signal.SIGTERM, 1.0), timeout_s=5)
    assert not pid_alive(pid)
    assert seen.read_text().split() == ["up", "TERM", "INT"]
