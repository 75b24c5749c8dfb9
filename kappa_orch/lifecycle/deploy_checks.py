"""What refuses a deploy before anything is written: a spec whose checks cannot run, a
replay whose history the log no longer holds, a cluster without a free task slot."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection

from kappa_orch.engine.protocol import ACTIVE_JOB_STATES, StreamEngine
from kappa_orch.errors import KappaError, ServiceUnavailable, SpecError
from kappa_orch.lifecycle.topics import retention_gaps
from kappa_orch.registry import store as registry
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.spec.load import SpecErrors
from kappa_orch.spec.model import LoadedPipeline, parse_duration

# slots one version's job takes: its operators share one slot at parallelism 1
SLOTS_PER_JOB = 1
# how long a repair waits for a free slot: a TaskManager that outlived its JobManager
# registers with the new one only after heartbeat.timeout (50 s), and cancelled jobs
# give their slots back within seconds
SLOT_WAIT_S = 120.0


def wait_for_slot(
    flink: StreamEngine,
    *,
    wait_s: float,
    log: Callable[[str], None],
    needed: int = SLOTS_PER_JOB,
    poll_s: float = 2.0,
) -> tuple[int, int]:
    """Wait (at most `wait_s`) until the cluster has `needed` free task slots, saying once
    what it waits for; the (free, total) slots it saw last."""
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        free, total = flink.slots()
        if free >= needed or time.monotonic() >= deadline:
            return free, total
        if not told:
            seen = "no TaskManager registered yet" if total == 0 else f"{free} of {total} task slots free"
            log(f"waiting up to {wait_s:.0f} s for a free task slot (the Flink cluster has {seen})")
            told = True
        time.sleep(poll_s)


def no_taskmanager(pipeline: str, version: int) -> ServiceUnavailable:
    """The error when the cluster has no TaskManager at all (0 slots): not a slot shortage."""
    return ServiceUnavailable(
        f"v{version} of {pipeline!r} cannot run: the Flink cluster has no TaskManager registered "
        "(0 task slots); after a JobManager restart a TaskManager registers again within about a minute",
        "start the TaskManagers (`kappa-orch stack up` on the local stack; on Kubernetes, check the "
        "TaskManager pods), then run the command again; nothing was submitted",
    )


def slot_shortage(
    pipeline: str,
    version: int,
    slots: tuple[int, int],
    holders: list[registry.VersionRow],
    needed: int = SLOTS_PER_JOB,
) -> KappaError | None:
    """The error to raise before submitting a job the cluster has no slot for (pure).
    `slots`: (free, total) on the cluster; `holders`: the versions whose jobs run on it."""
    free, total = slots
    if free >= needed:
        return None
    held = ", ".join(
        f"{r.pipeline} v{r.version} ({r.state}"
        + (f", replaced {r.replaced_at:%Y-%m-%d %H:%M} UTC" if r.replaced_at else "")
        + ")"
        for r in holders
    )
    replaced = [r for r in holders if r.state == registry.READY]
    retire = "; ".join(f"kappa-orch retire {r.pipeline} {r.version}" for r in replaced[:3])
    return KappaError(
        f"v{version} of {pipeline!r} needs {needed} task slot(s) and the Flink cluster has {free} of "
        f"{total} free; held by: {held or 'jobs kappa_orch does not know'}",
        (f"free slots by retiring replaced versions now ({retire}), " if retire else "")
        + "shorten retire.grace so replaced versions go sooner, or give the cluster more slots "
        "(taskmanager.numberOfTaskSlots, more TaskManagers); nothing was submitted",
    )


def check_replay_history(pipeline: LoadedPipeline, kafka: KafkaResource) -> None:
    """The retention guard of a replay: a new version replays the log from the earliest
    offsets; when the spec declares `start.retention_needed`, every source topic must
    still hold that much history. Raises before anything is written."""
    spec = pipeline.spec
    if spec.start.position != "earliest" or spec.start.retention_needed is None:
        return
    needed_from_ms = int((time.time() - parse_duration(spec.start.retention_needed)) * 1000)
    gaps = retention_gaps(kafka, sorted({s.topic for s in spec.sources}), needed_from_ms)
    if gaps:
        raise SpecError(
            f"a replay of {spec.name!r} needs {spec.start.retention_needed} of history "
            "(start.retention_needed), and the log no longer holds it:\n  " + "\n  ".join(gaps),
            "raise the topics' retention.ms, or lower start.retention_needed if the pipeline can do with "
            "less; nothing was deployed",
        )


def refuse_unrunnable_checks(pipeline: LoadedPipeline) -> None:
    """The spec's checks against their expectations' arguments and the target's columns."""
    from kappa_orch.spec.checks import check_problems

    problems = check_problems([pipeline])
    if problems:
        raise SpecErrors(problems)


def refuse_without_slot(conn: Connection, pipeline: str, version: int, flink: StreamEngine) -> None:
    """A job without a slot would restart for ever at "0 events/s": refuse it before
    anything is written."""
    free, total = flink.slots()
    if free >= SLOTS_PER_JOB:
        return
    if total == 0:
        raise no_taskmanager(pipeline, version)
    running = [
        r
        for r in registry.all_versions(conn)
        if r.state in registry.RUNNING_STATES
        and r.flink_job_id
        and flink.job_state(r.flink_job_id) in ACTIVE_JOB_STATES
    ]
    shortage = slot_shortage(pipeline, version, (free, total), running)
    if shortage is not None:
        raise shortage
