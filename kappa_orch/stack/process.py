"""Processes the stack owns: spawn with a pid file, wait for health, stop by pid.

Only processes recorded in our own pid files are ever signalled; a pid file whose
process is gone (or was reused by an unrelated program) is treated as stale.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kappa_orch.errors import StackError


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, or a note that it is missing."""
    if not path.exists():
        return f"(no log at {path})"
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 64_000))
        text = fh.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


OWNER_VARIABLE = "KAPPA_STACK_HOME"


@dataclass(frozen=True)
class PidFile:
    """A pid file; the process it names counts as ours only if its environment carries
    KAPPA_STACK_HOME=<owner> (set by `spawn`, kept across the exec of start scripts)."""

    path: Path
    owner: str

    def read(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def live_pid(self) -> int | None:
        """The recorded pid if that process is alive and is ours, else None."""
        pid = self.read()
        if pid is None or not pid_alive(pid):
            return None
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return None
        if f"{OWNER_VARIABLE}={self.owner}".encode() not in environ:
            return None
        return pid

    def write(self, pid: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{pid}\n")

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def pid_alive(pid: int) -> bool:
    """True while the process exists and has not exited (a zombie counts as exited)."""
    return Path(f"/proc/{pid}").exists() and not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    # the state letter follows the parenthesised command name
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def spawn(
    argv: Sequence[str],
    *,
    log: Path,
    pid_file: PidFile,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> int:
    """Start a detached process (own session) with output to `log`; record its pid.

    The process's environment is marked with the pid file's owner, so that `stop`
    never signals an unrelated process that reused the pid.

    `user` runs it under another account (PostgreSQL refuses to run as root).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**(env if env is not None else os.environ), OWNER_VARIABLE: pid_file.owner},
            cwd=cwd,
            start_new_session=True,
            user=user,
            group=_primary_group(user) if user else None,
            extra_groups=[] if user else None,
        )
    pid_file.write(proc.pid)
    return proc.pid


def _primary_group(user: str) -> int:
    return pwd.getpwnam(user).pw_gid


def wait_until(
    ready: Callable[[], bool],
    *,
    service: str,
    timeout_s: float,
    log: Path,
    pid: int | None = None,
) -> None:
    """Poll `ready` (every half second) until it holds; fail with the log tail on timeout
    or early death."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        if pid is not None and not pid_alive(pid):
            raise StackError(
                f"{service} exited during start-up. Last lines of {log}:\n{tail(log)}",
                f"read {log}; fix the cause, then run `kappa-orch stack up` again",
            )
        time.sleep(0.5)
    raise StackError(
        f"{service} did not become ready within {timeout_s:.0f}s. Last lines of {log}:\n{tail(log)}",
        f"read {log}; raise the timeout with --timeout if the machine is just slow",
    )


def stop_pid(
    pid_file: PidFile,
    *,
    timeout_s: float = 30.0,
    sig: signal.Signals = signal.SIGTERM,
    grace: tuple[signal.Signals, float] | None = None,
) -> bool:
    """Stop our process: `grace`'s signal first and its seconds to exit by itself, if
    given; then `sig`, then SIGKILL after `timeout_s`. True if one was running."""
    pid = pid_file.live_pid()
    if pid is None:
        pid_file.clear()
        return False
    leads_its_group = _group_of(pid) == pid  # spawn starts each process in its own session
    steps = [grace] if grace else []
    for step_sig, step_s in [*steps, (sig, timeout_s)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, step_sig)
        if _exited_within(pid, step_s):
            break
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
    _reap(pid)
    if leads_its_group:
        _stop_leftovers(pid, timeout_s)
    pid_file.clear()
    return True


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _stop_leftovers(group: int, timeout_s: float) -> None:
    """What the stopped process left in the session spawn started it in: a script that
    runs its server as a child without `exec` (found: the HA cluster's `zookeeper.sh`
    left its ZooKeeper JVM running, orphaned, after every stop). Only that group: every
    process in it was started by us."""
    for step_sig, step_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(group, step_sig)
        except ProcessLookupError:
            return  # nothing left
        deadline = time.monotonic() + step_s
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def _exited_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        _reap(pid)
        # the pid alone from here on: an exiting process may no longer show its environment
        if not pid_alive(pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def _reap(pid: int) -> None:
    # our own children (when up and down run in one process, as in tests) must be
    # waited for, or they linger as zombies
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
