"""Fault loop: kill -9 a TaskManager (or, --fault leader, the broker leading a source
partition) at random points of a reprocess, at scale, N times; on the single-node stack
or a multi-node one (`stack up --brokers 3 --taskmanagers 2`, then `--brokers 3
--taskmanagers 2` here).

Each trial is a fresh isolated copy of two reference pipelines (daily_spend, windowed;
account_latest, an upsert) on the running local stack, fed the realistic log of the
oracle tests (skewed partitions, broken and wrong-clock events mixed in). Both go live;
then daily_spend's spec changes and `kappa-orch reprocess daily_spend --wait` runs in a
subprocess while, at a point drawn at random —

- catch-up: 0-15 s after the candidate's Flink job was submitted,
- gate:     as soon as the reprocess logs its first check result,
- anywhere: 0-120 s after the candidate's job was submitted (maybe after the swap),

the TaskManager is killed with SIGKILL, more events are produced while it is gone, and
`stack up` brings back only the TaskManager. The trial is exact when the reprocess
exits 0, both live jobs are RUNNING under their old ids, and both aliases equal the
Python oracle (tests/integration/scale.py) over every event, the new ones included.

The JobManager is never restarted between trials (a long-running cluster), except by
`--fault cluster`: the JobManager and every TaskManager are killed (without HA the
restarted cluster knows no job); the stream observation sensor ticks every 10 s in the
background as Dagster's daemon would, recording each job's newest checkpoint in the
registry; after `stack up`, `kappa-orch repair` redeploys the live and ready versions
and the reprocess runs again unless it had finished, each version resuming from the
checkpoint the registry recorded. Run it on a stack whose checkpoints are on an
S3-compatible store to show that nothing reads a local folder (bench/s3_store.py).
A live job there counts as RUNNING under its new id.

    .venv/bin/python bench/fault_loop.py [--trials 5] [--events 100000] [--seed 1]
        [--fault taskmanager|leader|cluster] [--brokers 3 --taskmanagers 2]

Needs the local stack (`kappa-orch stack up`); prints one line per trial and
`n exact / n` at the end; exits 1 unless every trial was exact.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from assets.sample_events import sample_events  # noqa: E402
from kappa_orch.engine.flink.resource import FlinkResource  # noqa: E402
from kappa_orch.registry import store as registry  # noqa: E402
from kappa_orch.resources.kafka import KafkaResource  # noqa: E402
from kappa_orch.stack import manager  # noqa: E402
from kappa_orch.stack.config import StackConfig  # noqa: E402
from kappa_orch.stack.flink import FlinkService  # noqa: E402
from kappa_orch.stack.kafka import KafkaService  # noqa: E402
from tests.integration import scale  # noqa: E402
from tests.integration.at_scale import produce  # noqa: E402
from tests.integration.platform import (  # noqa: E402
    KAPPA,
    Platform,
    cli_env,
    count_declined_too,
    isolated_platform,
    observe_once,
    run_reprocess,
    start_cli,
)

PIPELINES = ("daily_spend", "account_latest")
POINTS = ("catch-up", "gate", "anywhere")


def serving(platform: Platform, pipeline: str) -> set[tuple[Any, ...]]:
    spec = platform.pipelines()[pipeline].spec
    columns = ", ".join(c.name for c in spec.target.columns)
    with platform.warehouse.connect() as conn:
        return {tuple(r) for r in conn.execute(text(f"SELECT {columns} FROM {spec.target.alias}"))}


def versions(platform: Platform, pipeline: str) -> dict[int, registry.VersionRow]:
    with platform.warehouse.begin() as conn:
        return {r.version: r for r in registry.pipeline_versions(conn, pipeline)}


def await_exact(platform: Platform, want: dict[str, set[Any]], timeout_s: float) -> dict[str, str]:
    """{pipeline: difference} for the aliases still not exact at the deadline."""
    deadline = time.monotonic() + timeout_s
    pending = dict(want)
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            if serving(platform, name) == pending[name]:
                del pending[name]
        time.sleep(2)
    differences = {}
    for name, rows in pending.items():
        got = serving(platform, name)
        differences[name] = f"{len(got - rows)} unexpected, {len(rows - got)} missing rows"
    return differences


def await_running(flink: FlinkResource, jobs: dict[str, str | None], timeout_s: float) -> dict[str, str]:
    """{pipeline: state} of the jobs still not RUNNING at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        states = {name: flink.job_state(job or "") for name, job in jobs.items()}
        waiting = {name: state for name, state in states.items() if state != "RUNNING"}
        if not waiting or time.monotonic() > deadline:
            return waiting
        time.sleep(2)


def _victim(
    fault: str, stack: StackConfig, platform: Platform, rng: random.Random
) -> tuple[tuple[str, int] | None, Any]:
    """(process, pid) to kill and its service: a TaskManager drawn at random, or the
    broker leading a partition of the source topic drawn at random; for `cluster`, the
    JobManager (its TaskManagers are killed with it, in `_kill`)."""
    from confluent_kafka.admin import AdminClient

    if fault == "cluster":
        service = FlinkService(stack)
        pid = service.live_pids().get("flink-jobmanager")
        return (("flink-jobmanager", pid) if pid else None), service
    if fault == "taskmanager":
        service: Any = FlinkService(stack)
        pids = {p: pid for p, pid in service.live_pids().items() if p.startswith("flink-taskmanager")}
        chosen = rng.choice(sorted(pids)) if pids else None
        return ((chosen, pids[chosen]) if chosen else None), service
    service = KafkaService(stack)
    topic = platform.topic("payments.authorizations")
    metadata = AdminClient({"bootstrap.servers": stack.kafka_bootstrap}).list_topics(topic, timeout=10)
    partitions = metadata.topics[topic].partitions
    leader = partitions[rng.choice(sorted(partitions))].leader
    process = f"kafka-{leader}" if stack.kafka_brokers > 1 else "kafka"
    pid = service.live_pids().get(process)
    return ((process, pid) if pid else None), service


@contextlib.contextmanager
def observer(platform: Platform, kafka: KafkaResource, flink: FlinkResource, interval_s: float) -> Any:
    """The stream observation sensor ticking in the background, as Dagster's daemon runs
    it: it records each job's newest checkpoint in the registry."""
    stop = threading.Event()

    def tick() -> None:
        cursor = None
        while not stop.wait(interval_s):
            with contextlib.suppress(Exception):  # an outage is the sensor's own business
                _events, cursor = observe_once(platform, kafka, flink, cursor)

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=60)


def _kill(fault: str, pid: int, service: Any) -> None:
    """SIGKILL the victim; for `cluster`, every TaskManager too (the SQL Gateway lives on)."""
    if fault == "cluster":
        for process, other in service.live_pids().items():
            if process.startswith("flink-taskmanager"):
                os.kill(other, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)


def recover_cluster(
    platform: Platform, stack: StackConfig, reprocess_code: int | None, logs: Path, number: int
) -> tuple[int, str | None]:
    """After the whole Flink cluster was lost: `kappa-orch repair`, then the reprocess
    again unless it had finished. (versions restored from the registry's checkpoint,
    the problem or None)."""
    outputs = []
    for args, needed in ((["repair"], True), (["reprocess", "daily_spend", "--wait"], reprocess_code != 0)):
        if not needed:
            continue
        done = subprocess.run(
            [KAPPA, *args], env=cli_env(platform, stack), capture_output=True, text=True, timeout=1200
        )
        outputs.append(done.stdout + done.stderr)
        if done.returncode != 0:
            (logs / f"trial-{number}-recovery.log").write_text("\n".join(outputs))
            return 0, f"{' '.join(args)} failed: {outputs[-1][-600:]}"
    (logs / f"trial-{number}-recovery.log").write_text("\n".join(outputs))
    return sum(o.count("(as told by the registry") for o in outputs), None


def trial(
    number: int,
    point: str,
    rng: random.Random,
    events: int,
    stack: StackConfig,
    kafka: KafkaResource,
    flink: FlinkResource,
    logs: Path,
    fault: str = "taskmanager",
) -> dict[str, Any]:
    log = scale.scale_log(events, seed=100 + number)
    with (
        tempfile.TemporaryDirectory(prefix="kappa-fault-") as folder,
        isolated_platform(stack, kafka, flink, Path(folder), only=list(PIPELINES)) as platform,
        contextlib.ExitStack() as background,
    ):
        produce(kafka, platform.topic("payments.authorizations"), log.auth_log, [0, 1, 2])
        for name in PIPELINES:
            assert run_reprocess(platform, platform.pipelines()[name], kafka, flink).success, name
        live_jobs = {name: versions(platform, name)[1].flink_job_id for name in PIPELINES}
        if fault == "cluster":
            background.enter_context(observer(platform, kafka, flink, 10))
        count_declined_too(platform)
        started = time.monotonic()
        reprocess = start_cli(platform, stack, "reprocess", "daily_spend", "--wait")
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(reprocess.stdout or []), daemon=True)
        reader.start()
        try:
            while (
                2 not in versions(platform, "daily_spend")
                or not versions(platform, "daily_spend")[2].flink_job_id
            ):
                if reprocess.poll() is not None or time.monotonic() - started > 300:
                    return {"exact": False, "why": "the candidate was not deployed", "output": lines[-5:]}
                time.sleep(0.5)
            submitted = time.monotonic()
            if point == "gate":
                while not any(": check " in line for line in lines) and reprocess.poll() is None:
                    time.sleep(0.2)
            else:
                time.sleep(rng.uniform(0, 15) if point == "catch-up" else rng.uniform(0, 120))
            at = time.monotonic() - submitted
            state = versions(platform, "daily_spend")[2].state
            victim, service = _victim(fault, stack, platform, rng)
            if victim is None:
                return {"exact": False, "why": f"no {fault} to kill was running"}
            _kill(fault, victim[1], service)
            more = sample_events(
                5_000,
                seed=number,
                start_ms=scale.START_MS + 3 * scale.DAY_MS,
                step_ms=10_000,
                id_prefix=f"f{number}",
            ).authorizations
            kafka.produce(
                platform.topic("payments.authorizations"),
                more,
                key=lambda e: e["account"],  # type: ignore[index]
                timestamp_ms=lambda e: e["ts"],  # type: ignore[index]
            )
            time.sleep(rng.uniform(1, 10))
            manager.up(stack, report=lambda _m: None, only=[service])
            reprocess.wait(timeout=900)
            reader.join(timeout=10)
        finally:
            if reprocess.poll() is None:
                reprocess.kill()
            (logs / f"trial-{number}.log").write_text("".join(lines))
        result: dict[str, Any] = {"killed": victim[0], "killed_after_s": round(at, 1)}
        result["candidate_state"] = state
        if fault == "cluster":
            # the restarted cluster knows no job: repair the live ones, then the reprocess
            # again (its candidate resumes too); from the checkpoints the registry recorded
            background.close()  # the observer stops before the recovery
            result["restored"], failed = recover_cluster(platform, stack, reprocess.returncode, logs, number)
            if failed:
                return {**result, "exact": False, "why": failed}
            live_jobs = {name: versions(platform, name)[1].flink_job_id for name in PIPELINES}
        elif reprocess.returncode != 0:
            return {**result, "exact": False, "why": "reprocess failed", "output": lines[-8:]}
        # the live jobs restart by themselves (exponential delay, at most 30 s apart)
        not_running = await_running(flink, live_jobs, timeout_s=120)
        auths = log.authorizations + more
        want = {
            "daily_spend": scale.daily_spend(auths, {"approved", "declined"}),
            "account_latest": scale.account_latest(auths),
        }
        differences = await_exact(platform, want, timeout_s=300)
        exact = not differences and versions(platform, "daily_spend")[2].state == registry.LIVE
        # a live job left failed or restarting is a miss
        if not_running:
            exact = False
        return {
            **result,
            "exact": exact,
            "seconds": round(time.monotonic() - started),
            **({"not_exact": differences} if differences else {}),
            **({"live_jobs_not_running": not_running} if not_running else {}),
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--logs", type=Path, default=Path(tempfile.gettempdir()) / "kappa-fault-loop")
    parser.add_argument("--fault", choices=["taskmanager", "leader", "cluster"], default="taskmanager")
    parser.add_argument("--brokers", type=int, default=1, help="Kafka nodes of the running stack")
    parser.add_argument("--taskmanagers", type=int, default=1, help="TaskManagers of the running stack")
    args = parser.parse_args()
    args.logs.mkdir(parents=True, exist_ok=True)
    print(f"each trial's reprocess output goes to {args.logs}/trial-<n>.log", flush=True)
    # the stack the environment names, with the topology and storage `stack up` recorded
    stack = replace(
        StackConfig.from_environment(os.environ, ROOT / ".kappa"),
        kafka_brokers=args.brokers,
        taskmanagers=args.taskmanagers,
    )
    resources = stack.platform().resources()
    kafka, flink = resources["kafka"], resources["flink"]
    rng = random.Random(args.seed)
    results = []
    for number in range(1, args.trials + 1):
        point = POINTS[(number - 1) % len(POINTS)]
        outcome = trial(number, point, rng, args.events, stack, kafka, flink, args.logs, args.fault)
        results.append(outcome)
        print(json.dumps({"trial": number, "point": point, **outcome}), flush=True)
    exact = sum(1 for r in results if r["exact"])
    what = {"taskmanager": "TaskManager", "leader": "partition leader broker"}.get(
        args.fault, "JobManager + TaskManagers"
    )
    print(
        f"{what} kill -9 during reprocess ({args.brokers} broker(s), {args.taskmanagers} TaskManager(s)), "
        f"{args.events:,} events: {exact} exact / {len(results)}"
    )
    sys.exit(0 if exact == len(results) else 1)


if __name__ == "__main__":
    main()
