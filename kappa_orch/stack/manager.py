"""`stack up | down | status`: the local Kappa stack as one unit."""

from __future__ import annotations

from collections.abc import Callable

from kappa_orch.errors import StackError
from kappa_orch.stack.config import LOOPBACK, StackConfig
from kappa_orch.stack.flink import FlinkService
from kappa_orch.stack.jars import require_tool, resolve_all
from kappa_orch.stack.kafka import KafkaService
from kappa_orch.stack.object_store import check_writable
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
    if any(isinstance(s, FlinkService) for s in to_start):
        check_writable(config.checkpoints, s3_endpoint=config.s3_endpoint)
        check_writable(config.savepoints, s3_endpoint=config.s3_endpoint, what="savepoint")
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
    config: StackConfig,
    report: Report = print,
    *,
    only: list[Service] | None = None,
    attempts: int = 2,
) -> list[ServiceStatus]:
    """Start whatever is not running; leave running services alone; return the statuses
    once every service is healthy, else raise naming the one that is not.

    A service partly running restarts only its dead processes when it can (a lone
    TaskManager rejoins; the JobManager and its jobs keep running), else all of them. A
    start that fails is tried again (`attempts` in all) before it is given up; then the
    services started by this call are stopped again, so a failed `up` leaves nothing
    half-started.
    """
    _ensure_dirs(config)
    all_services = services(config) if only is None else only
    plans = _start_plans(all_services, report)
    to_start = [service for service, _ in plans]
    preflight(config, [s for s, parts in plans if len(parts) == len(s.pid_files())])
    if any(service.needs_jars for service in to_start):
        resolve_all(config.jars_dir)
    _start(plans, attempts, report)
    statuses = [service.status() for service in all_services]
    unhealthy = [s for s in statuses if s.state != "running"]
    if unhealthy:
        raise StackError(
            "the stack is not healthy: "
            + "; ".join(f"{s.name} {s.state}" + (f" ({s.detail})" if s.detail else "") for s in unhealthy),
            f"read the logs in {config.logs_dir}, then run `kappa-orch stack up` again",
        )
    return statuses


def _start_plans(all_services: list[Service], report: Report) -> list[tuple[Service, list[str]]]:
    """Which processes of each service to start: none (running), the dead ones (a service
    that restarts parts), or all of them (after stopping what is left)."""
    plans: list[tuple[Service, list[str]]] = []
    for service in all_services:
        pids = service.live_pids()
        processes = list(service.pid_files())
        if len(pids) == len(processes):
            report(f"{service.name}: already running (pid {', '.join(map(str, pids.values()))})")
            service.settle()
            continue
        dead = [p for p in processes if p not in pids]
        if pids and service.restarts_parts:
            report(f"{service.name}: {', '.join(dead)} not running; starting only that")
            for process in dead:
                service.pid_files()[process].clear()
            plans.append((service, dead))
            continue
        if pids:
            report(f"{service.name}: only partly running; restarting it")
        service.stop()  # also clears stale pid files
        plans.append((service, processes))
    return plans


def _start(plans: list[tuple[Service, list[str]]], attempts: int, report: Report) -> None:
    """Start each planned part, trying again once; on failure stop what this call started."""
    started: list[tuple[Service, list[str]]] = []
    try:
        for service, parts in plans:
            started.append((service, parts))
            for attempt in range(1, attempts + 1):
                report(f"{service.name}: starting {', '.join(parts)} ...")
                try:
                    service.start_parts(parts)
                    break
                except StackError as exc:
                    if attempt == attempts:
                        raise
                    report(f"{service.name}: start failed ({exc.problem.splitlines()[0]}); trying again")
                    service.stop_parts(parts)
            report(f"{service.name}: ready")
    except BaseException:
        for service, parts in reversed(started):
            report(f"{service.name}: stopping after failed start-up")
            service.stop_parts(parts)
        raise


def down(config: StackConfig, report: Report = print) -> None:
    """Stop exactly the processes recorded in the stack's pid files."""
    for service in reversed(services(config)):
        if service.stop():
            report(f"{service.name}: stopped")
        else:
            report(f"{service.name}: was not running")


def status(config: StackConfig) -> list[ServiceStatus]:
    return [service.status() for service in services(config)]
