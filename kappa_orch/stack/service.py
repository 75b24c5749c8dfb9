"""What every local service offers the stack manager."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from kappa_orch.stack.config import LOOPBACK, StackConfig
from kappa_orch.stack.process import PidFile, port_is_open, stop_pid


@dataclass(frozen=True)
class ServiceStatus:
    """Health of one service as `kappa-orch stack status` reports it."""

    name: str
    state: str  # running | stopped | unhealthy
    address: str
    version: str | None = None
    pids: dict[str, int] = field(default_factory=dict)
    detail: str | None = None


class Service(ABC):
    """A local server made of one or more processes that the stack owns."""

    name: str
    needs_jars: bool = True

    def __init__(self, config: StackConfig) -> None:
        self.config = config

    @abstractmethod
    def ports(self) -> list[int]:
        """Ports this service binds on the loopback address."""

    @abstractmethod
    def pid_files(self) -> dict[str, PidFile]:
        """One pid file per process, in start order."""

    @abstractmethod
    def start(self) -> None:
        """Start every process and wait until the service answers."""

    # a service whose processes can be started one by one (Flink: a lone TaskManager
    # comes back and rejoins, the JobManager and its jobs keep running)
    restarts_parts: bool = False

    def start_parts(self, processes: list[str]) -> None:
        """Start only these of its processes (when `restarts_parts`); default: all."""
        self.start()

    def stop_parts(self, processes: list[str]) -> None:
        for process in reversed(processes):
            stop_pid(self.pid_files()[process])

    def settle(self) -> None:
        """What `stack up` redoes for a service that already runs (default: nothing)."""
        return None

    @abstractmethod
    def status(self) -> ServiceStatus:
        """Probe the service."""

    def pid_file(self, process: str) -> PidFile:
        return PidFile(self.config.pids_dir / f"{process}.pid", str(self.config.home))

    def live_pids(self) -> dict[str, int]:
        pids = {}
        for process, pid_file in self.pid_files().items():
            pid = pid_file.live_pid()
            if pid is not None:
                pids[process] = pid
        return pids

    def busy_ports(self) -> list[int]:
        """Ports taken by something that is not this service."""
        if self.live_pids():
            return []
        return [port for port in self.ports() if port_is_open(LOOPBACK, port)]

    def stop(self) -> bool:
        """Stop our processes, last started first. True if any was running."""
        stopped = False
        for pid_file in reversed(list(self.pid_files().values())):
            stopped = stop_pid(pid_file) or stopped
        return stopped
