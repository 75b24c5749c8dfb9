"""`stack up | down | status`: the local Kappa stack as one unit."""

from __future__ import annotations

from collections.abc import Callable

from kappa_orch.errors import StackError
from kappa_orch.stack.config import LOOPBACK, StackConfig
from kappa_orch.stack.flink import FlinkService
from kappa_orch.stack.jars import require_tool, resolve_all
from kappa_orch.stack.kafka import KafkaService
from kappa_orch.stack.postgres import PostgresService, postgres_bin_dir
from kappa_orch.stack.service import Service, ServiceStatus

Report = Callable[[str], None]


def services(config: StackConfig) -> list[Service]:
    """Every service, in start order (the warehouse first: Flink jobs write to it)."""
    return [PostgresService(config), KafkaService(config), FlinkService(config)]


def _ensure_dirs(config: StackConfig) -> None:
    for folder in (config.home, config.logs_dir, config.pids_dir, config.jars_dir):
        folder.mkdir(parents=True, exist_ok=True)


def preflight(config: StackConfig, to_start: list[Service]) -> None:
    """Everything that can be checked before any process starts."""
    if any(service.needs_jars for service in to_start):
        require_tool("java", "openjdk-17-jre-headless")
    if any(isinstance(s, PostgresService) for s in to_start):
        postgres_bin_dir()
    taken = [(s.name, port) for s in to_start for port in s.busy_ports()]
    if taken:
        lines = ", ".join(f"{port} (for {name})" for name, port in taken)
        first = taken[0][1]
        raise StackError(
            f"port(s) already in use on {LOOPBACK}: {lines}; another program holds them",
            f"find it with `ss -ltnp 'sport = :{first}'` and stop it, or give the stack "
            "other ports (`kappa-orch stack up --help` lists the flags and KAPPA_* variables)",
        )


def up(
    config: StackConfig, report: Report = print, *, only: list[Service] | None = None
) -> list[ServiceStatus]:
    """Start whatever is not running; leave running services alone.

    On any failure the services started by this call are stopped again, so a
    failed `up` leaves nothing half-started.
    """
    _ensure_dirs(config)
    all_services = services(config) if only is None else only
    to_start: list[Service] = []
    for service in all_services:
        pids = service.live_pids()
        if len(pids) == len(service.pid_files()):
            report(f"{service.name}: already running (pid {', '.join(map(str, pids.values()))})")
            continue
        if pids:
            report(f"{service.name}: only partly running; restarting it")
        service.stop()  # also clears stale pid files
        to_start.append(service)
    preflight(config, to_start)
    if any(service.needs_jars for service in to_start):
        resolve_all(config.jars_dir)

    started: list[Service] = []
    try:
        for service in to_start:
            report(f"{service.name}: starting ...")
            started.append(service)
            service.start()
            report(f"{service.name}: ready")
    except BaseException:
        for service in reversed(started):
            report(f"{service.name}: stopping after failed start-up")
            service.stop()
        raise
    return [service.status() for service in all_services]


def down(config: StackConfig, report: Report = print) -> None:
    """Stop exactly the processes recorded in the stack's pid files."""
    for service in reversed(services(config)):
        if service.stop():
            report(f"{service.name}: stopped")
        else:
            report(f"{service.name}: was not running")


def status(config: StackConfig) -> list[ServiceStatus]:
    return [service.status() for service in services(config)]
