"""Reprocess benchmark: replay N events through the kappa_orch reprocess and, in the
same run, through the same Flink SQL submitted by hand with no orchestration.

Both replay the topic from the earliest offset into a fresh table on the same
cluster, and both are measured the same way, by the same code: the clock starts when
Flink accepted the job (its id returned), the committed consumer lag of the job's
group is polled every 0.25 s from this process, and the replay is done at the first
reading of zero. Throughput is N / that time. The reprocess runs in a thread while
the main thread measures it; its time is also split into deploy, catch-up (with the
stability window and the checkpoint after it), checks and swap.

    .venv/bin/python bench/reprocess.py [--events 1000000]

Needs the local stack (`kappa-orch stack up`). Uses its own topic and database and
removes them afterwards.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox import Sandbox, run_on_events  # noqa: E402
from sqlalchemy import text  # noqa: E402

from assets.sample_events import sample_events  # noqa: E402
from kappa_orch.engine.flink.sql import version_job  # noqa: E402
from kappa_orch.engine.protocol import JobTarget  # noqa: E402
from kappa_orch.lifecycle.reprocess import prepare_candidate  # noqa: E402
from kappa_orch.lifecycle.services import Services  # noqa: E402
from kappa_orch.lifecycle.swap import swap  # noqa: E402
from kappa_orch.registry import store as registry  # noqa: E402
from kappa_orch.registry.claims import Claimant, owner_id  # noqa: E402
from kappa_orch.registry.serving import create_version_table  # noqa: E402
from kappa_orch.resources.kafka import KafkaResource  # noqa: E402
from kappa_orch.spec.load import load_pipelines  # noqa: E402

POLL_S = 0.25


def wait_lag_zero(kafka: KafkaResource, group: str, topic: str, started: float) -> float:
    """Seconds from `started` (monotonic) until the group's committed lag reads zero."""
    while sum(kafka.consumer_lag(group, topic).values()) > 0:
        time.sleep(POLL_S)
    return time.monotonic() - started


def main() -> None:
    run_on_events(__doc__, run)


def run(box: Sandbox, events_count: int) -> None:
    kafka, flink, warehouse, topic, folder = box.kafka, box.flink, box.warehouse, box.topic, box.folder
    for name in ("auth_copy.yaml", "auth_copy.sql"):
        content = (ROOT / "bench" / "specs" / name).read_text().replace("payments.authorizations", topic)
        (folder / name).write_text(content)
    jobs: list[str] = []
    try:
        print(f"producing {events_count:,} events to {topic} ...", flush=True)
        produced = 0
        started = time.monotonic()
        for batch in range(0, events_count, 200_000):
            count = min(200_000, events_count - batch)
            events = sample_events(count, seed=batch + 1, id_prefix=f"b{batch}")
            produced += kafka.produce(topic, events.authorizations, key=lambda e: e["auth_id"])  # type: ignore[index]
        print(f"  {produced:,} events in {time.monotonic() - started:.1f}s", flush=True)

        [v1] = load_pipelines(folder)
        print("v1: first deploy of the pipeline (the live version the candidate is checked against) ...")
        services = Services(kafka, flink, warehouse, log=print)
        prepare_candidate(v1, services, Claimant(owner_id("bench-v1")))
        swap(v1, services)  # a first version goes live by its gated swap
        wait_lag_zero(kafka, "kappa.auth_copy.v1", topic, time.monotonic())
        (folder / "auth_copy.sql").write_text(
            "SELECT auth_id, account, amount_cents * 1 AS amount_cents, status\nFROM authorizations\n"
        )
        [v2] = load_pipelines(folder)

        # bare: the same SQL, submitted by hand, no registry, claims, checks or swap
        with warehouse.begin() as conn:
            create_version_table(conn, v2.spec, "auth_copy__bare")
            # a job role of its own, as a version's job has (found: with the sinks' role its
            # input counts were refused, least privilege, and the failing sink took the
            # TaskManager down); its counters are version 0's
            jdbc = warehouse.job_jdbc_options(
                conn, job="bench:bare", writes=["bench.auth_copy__bare"], pipeline="auth_copy", version=0
            )
        bare = JobTarget("auth_copy__bare", f"bench.bare.{topic}", kafka.bootstrap_servers, jdbc)
        bare_job = version_job(v2.spec, v2.sql_text, 0, bare)
        job = flink.submit_sql(setup=bare_job.setup, inserts=bare_job.inserts, job_name="bench-bare")
        started = time.monotonic()  # the clock of both: from the accepted submission
        jobs.append(job)
        bare_s = wait_lag_zero(kafka, f"bench.bare.{topic}", topic, started)
        flink.cancel(job)
        print(f"bare: {events_count / bare_s:,.0f} events/s ({bare_s:.1f}s)", flush=True)

        # orchestrated: the reprocess flow, step by step, timed
        started = time.monotonic()
        marks: dict[str, float] = {}
        submitted = threading.Event()

        def log(message: str) -> None:
            now = time.monotonic() - started
            if "job" in message and "submitted" in message:
                marks["deploy"] = now
                submitted.set()
            if "caught up" in message:
                marks["caught_up"] = now
            print(f"  [{now:6.1f}s] {message}", flush=True)

        reports = []
        flow = threading.Thread(
            target=lambda: reports.append(
                prepare_candidate(v2, services.telling(log), Claimant(owner_id("bench-v2")))
            )
        )
        flow.start()
        if not submitted.wait(timeout=300):
            raise SystemExit("the reprocess did not submit its job within 300 s")
        reprocess_s = wait_lag_zero(kafka, "kappa.auth_copy.v2", topic, started + marks["deploy"])
        flow.join()
        [report] = reports
        gated = time.monotonic() - started
        swap_started = time.monotonic()
        swap(v2, services)
        swap_s = time.monotonic() - swap_started
        assert report.passed and report.catch_up is not None
        with warehouse.begin() as conn:
            rows = {r.version: r for r in registry.pipeline_versions(conn, "auth_copy")}
            count = conn.execute(text("SELECT count(*) FROM bench.auth_copy")).scalar_one()
        jobs += [r.flink_job_id for r in rows.values() if r.flink_job_id]
        reprocess_rate = events_count / reprocess_s
        bare_rate = events_count / bare_s
        deploy_s = marks["deploy"]
        catch_up_s = marks["caught_up"] - deploy_s
        checks_s = gated - marks["caught_up"]
        outside = deploy_s + checks_s + swap_s
        window = v2.spec.catch_up.stable_for
        print()
        print(f"events                      {events_count:>12,}")
        print(f"alias rows after the swap   {count:>12,}")
        print(f"bare replay                 {bare_s:>12.1f} s   (job accepted -> committed lag 0)")
        print(f"reprocess replay            {reprocess_s:>12.1f} s   (the same, measured the same way)")
        print(f"bare throughput             {bare_rate:>12,.0f} events/s")
        print(f"reprocess throughput        {reprocess_rate:>12,.0f} events/s")
        print(f"ratio (reprocess / bare)    {reprocess_rate / bare_rate:>12.2f}   (aim >= 0.9)")
        print(f"deploy                      {deploy_s:>12.1f} s")
        print(f"catch-up                    {catch_up_s:>12.1f} s   (+{window} stable, checkpoint)")
        print(f"checks                      {checks_s:>12.1f} s")
        print(f"swap                        {swap_s:>12.2f} s")
        print(f"outside catch-up            {outside:>12.1f} s   (aim < 15 s for a million rows)")
    finally:
        for job in jobs:
            if flink.job_state(job) in {"RUNNING", "CREATED", "RESTARTING", "INITIALIZING"}:
                flink.cancel(job)


if __name__ == "__main__":
    main()
