"""The machine's own limits for a replay, measured on one topic in one run (issue 27,
point 1), beside the replay through kappa_orch: how far the replay is from what the box
can do at all.

On the same N authorizations (bench/specs/auth_copy: one row per event, the heaviest sink
path), each measured from its start to its last record:

1. kafka consume   the broker's raw consume rate (librdkafka, batches of 10,000, no decoding);
2. flink read      Flink reading the topic's bytes into a discarding sink (bounded source);
3. flink decode    Flink reading and decoding the same events the way a version's job does
                   (KAPPA_PARSE, every validity rule) into a discarding sink;
4. pg copy         PostgreSQL ingesting the same rows by COPY into a fresh table;
5. pg upsert       the same rows as the JDBC sink writes them: INSERT ... ON CONFLICT DO
                   UPDATE in batches of 5,000, one commit each, sent as pgjdbc sends them
                   with reWriteBatchedInserts (the sinks' connections set it): statements
                   of up to 128 rows each; printed beside it, for reference, one row per
                   statement (without the rewrite);
6. replay          the kappa_orch reprocess of auth_copy, its job accepted -> committed lag 0
                   (measured as bench/reprocess.py does).

It prints each as events/s and the replay's ratio to the slowest of the raw limits (1-5).

    .venv/bin/python bench/limits.py [--events 1000000]

Needs the local stack (`kappa-orch stack up`), nothing else running on it. Uses its own
topic and database and removes them afterwards.
"""

from __future__ import annotations

import io
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from psycopg2.extras import execute_batch, execute_values  # noqa: E402
from reprocess import wait_lag_zero  # noqa: E402
from sandbox import Sandbox, run_on_events  # noqa: E402
from sqlalchemy import text  # noqa: E402

from assets.sample_events import sample_events  # noqa: E402
from kappa_orch.engine.flink.sources import (  # noqa: E402
    checked_source_ddl,
    function_ddl,
    raw_table,
    valid_view_ddl,
)
from kappa_orch.lifecycle.reprocess import prepare_candidate  # noqa: E402
from kappa_orch.lifecycle.services import Services  # noqa: E402
from kappa_orch.registry import store as registry  # noqa: E402
from kappa_orch.registry.claims import Claimant, owner_id  # noqa: E402
from kappa_orch.spec.load import load_pipelines  # noqa: E402
from kappa_orch.spec.model import LoadedPipeline  # noqa: E402

BATCH = 5_000
COLUMNS = "auth_id text PRIMARY KEY, account text, amount_cents bigint, status text"


def main() -> None:
    run_on_events(__doc__, run)


def run(box: Sandbox, events_count: int) -> None:
    for name in ("auth_copy.yaml", "auth_copy.sql"):
        content = (ROOT / "bench" / "specs" / name).read_text().replace("payments.authorizations", box.topic)
        (box.folder / name).write_text(content)
    [pipeline] = load_pipelines(box.folder)
    print(f"producing {events_count:,} events to {box.topic} ...", flush=True)
    rows: list[tuple[str, str, int, str]] = []
    for batch in range(0, events_count, 200_000):
        events = sample_events(min(200_000, events_count - batch), seed=batch + 1, id_prefix=f"b{batch}")
        box.kafka.produce(box.topic, events.authorizations, key=lambda e: e["auth_id"])  # type: ignore[index]
        rows += [(e["auth_id"], e["account"], e["amount_cents"], e["status"]) for e in events.authorizations]  # type: ignore[index]
    rates = {
        "kafka consume": events_count / kafka_consume(box, events_count),
        "flink read": events_count / flink_job(box, pipeline, decode=False),
        "flink decode": events_count / flink_job(box, pipeline, decode=True),
        "pg copy": events_count / pg_copy(box, rows),
        "pg upsert": events_count / pg_upsert(box, rows, rewritten=True),
    }
    one_per_statement = events_count / pg_upsert(box, rows, rewritten=False)
    replay = events_count / kappa_replay(box, pipeline)
    slowest = min(rates, key=lambda k: rates[k])
    print()
    print(f"events                  {events_count:>12,}")
    for name, rate in rates.items():
        print(f"{name:<23} {rate:>12,.0f} events/s")
    print(f"(pg upsert, 1 row/stmt) {one_per_statement:>12,.0f} events/s")
    print(f"replay (kappa_orch)     {replay:>12,.0f} events/s")
    print(f"slowest raw limit       {slowest} ({rates[slowest]:,.0f} events/s)")
    print(f"ratio (replay / limit)  {replay / rates[slowest]:>12.2f}   (aim >= 0.3)")


def say(line: str) -> None:
    print(f"  {line}", flush=True)


def kafka_consume(box: Sandbox, events_count: int) -> float:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": box.kafka.bootstrap_servers,
            "group.id": f"bench-raw-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.max.bytes": 52_428_800,
        }
    )
    consumer.subscribe([box.topic])
    seen, started = 0, time.monotonic()
    try:
        while seen < events_count:
            seen += sum(1 for m in consumer.consume(10_000, timeout=5.0) if m.error() is None)
    finally:
        consumer.close()
    seconds = time.monotonic() - started
    say(f"kafka consume: {seen:,} records in {seconds:.1f} s")
    return seconds


def flink_job(box: Sandbox, pipeline: LoadedPipeline, *, decode: bool) -> float:
    """A bounded Flink job over the topic into a blackhole: the bytes only, or decoded."""
    [source] = pipeline.spec.sources
    group = f"bench.limits.{uuid.uuid4().hex[:6]}"
    setup = function_ddl() + checked_source_ddl(
        source,
        bootstrap=box.kafka.bootstrap_servers,
        group_id=group,
        startup_mode="earliest-offset",
        extra_options={"scan.bounded.mode": "latest-offset"},
    )
    setup.append(valid_view_ddl(source))
    columns = [c.name for c in source.columns] if decode else ["payload_bytes"]
    types = [f"`{c.name}` {c.type}" for c in source.columns] if decode else ["`payload_bytes` BYTES"]
    setup.append(f"CREATE TEMPORARY TABLE `bench_hole` ({', '.join(types)}) WITH ('connector' = 'blackhole')")
    view = source.name if decode else raw_table(source)
    insert = f"INSERT INTO `bench_hole` SELECT {', '.join(f'`{c}`' for c in columns)} FROM `{view}`"
    job = box.flink.submit_sql(
        setup=setup, inserts=[insert], job_name=f"bench-limits-{'decode' if decode else 'read'}"
    )
    started = time.monotonic()
    box.flink.wait_for_state(job, {"FINISHED"}, timeout_s=1800)
    seconds = time.monotonic() - started
    say(f"flink {'decode' if decode else 'read'}: job {job} finished in {seconds:.1f} s")
    return seconds


def pg_timed(box: Sandbox, table: str, fill: Callable[[Any, Any], None]) -> float:
    """Seconds `fill(connection, cursor)` takes to fill a fresh `table` over one raw
    connection (its creation not counted)."""
    with box.warehouse.begin() as conn:
        conn.execute(text(f"CREATE TABLE {table} ({COLUMNS})"))
    raw = box.warehouse.get_engine().raw_connection()
    started = time.monotonic()
    try:
        with raw.cursor() as cursor:
            fill(raw, cursor)
        raw.commit()
    finally:
        raw.close()
    return time.monotonic() - started


def pg_copy(box: Sandbox, rows: list[tuple[str, str, int, str]]) -> float:
    buffer = io.StringIO("".join(f"{a}\t{b}\t{c}\t{d}\n" for a, b, c, d in rows))
    seconds = pg_timed(
        box, "bench_copy", lambda _, cursor: cursor.copy_expert("COPY bench_copy FROM STDIN", buffer)
    )
    say(f"pg copy: {len(rows):,} rows in {seconds:.1f} s")
    return seconds


def pg_upsert(box: Sandbox, rows: list[tuple[str, str, int, str]], *, rewritten: bool) -> float:
    columns = "INSERT INTO {table} (auth_id, account, amount_cents, status) VALUES {values} "
    conflict = (
        "ON CONFLICT (auth_id) DO UPDATE SET account = EXCLUDED.account, "
        "amount_cents = EXCLUDED.amount_cents, status = EXCLUDED.status"
    )
    table = "bench_upsert_rewritten" if rewritten else "bench_upsert"

    def batches(raw: Any, cursor: Any) -> None:
        for at in range(0, len(rows), BATCH):
            batch = rows[at : at + BATCH]
            if rewritten:
                # pgjdbc's reWriteBatchedInserts: multi-row VALUES, up to 128 rows a statement
                statement = columns.format(table=table, values="%s") + conflict
                execute_values(cursor, statement, batch, page_size=128)
            else:
                # statements sent a page at a time, as pgjdbc's executeBatch pipelines them
                statement = columns.format(table=table, values="(%s, %s, %s, %s)") + conflict
                execute_batch(cursor, statement, batch, page_size=BATCH)
            raw.commit()

    seconds = pg_timed(box, table, batches)
    how = "statements of up to 128 rows" if rewritten else "one row a statement"
    say(f"pg upsert: {len(rows):,} rows in {seconds:.1f} s (batches of {BATCH:,}, {how}, one commit each)")
    return seconds


def kappa_replay(box: Sandbox, pipeline: LoadedPipeline) -> float:
    """The reprocess of the pipeline, from its job accepted to its committed lag at 0."""
    submitted, marks = threading.Event(), {}
    started = time.monotonic()

    def log(message: str) -> None:
        if "job" in message and "submitted" in message:
            marks["deploy"] = time.monotonic()
            submitted.set()

    services = Services(box.kafka, box.flink, box.warehouse, log=log)
    flow = threading.Thread(
        target=lambda: prepare_candidate(pipeline, services, Claimant(owner_id("bench-limits")))
    )
    flow.start()
    if not submitted.wait(timeout=300):
        raise SystemExit("the reprocess did not submit its job within 300 s")
    seconds = wait_lag_zero(box.kafka, "kappa.auth_copy.v1", box.topic, marks["deploy"])
    flow.join()
    with registry.session(box.warehouse) as conn:
        for row in registry.pipeline_versions(conn, pipeline.name):
            if row.flink_job_id:  # the sandbox drops its database; its job goes first
                box.flink.cancel(row.flink_job_id, wait=False)
    say(
        f"replay: {seconds:.1f} s from the job accepted to its committed lag at 0 "
        f"(deploy took {marks['deploy'] - started:.1f} s)"
    )
    return seconds


if __name__ == "__main__":
    main()
