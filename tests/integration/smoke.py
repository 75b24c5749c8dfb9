"""The smoke pipeline: Kafka -> Flink SQL aggregate -> JDBC upsert into PostgreSQL,
written by hand without a spec (a test helper, not part of the library).

It proves the local stack end to end, below kappa_orch's own pipelines. Events are
read as raw strings and parsed in SQL, so that an event that is not JSON or breaks the
schema is not dropped by the format: it goes to a rejects table keyed by its (partition,
offset).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, func, select, text

from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.errors import KappaError
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.resources.warehouse import WarehouseResource

Report = Callable[[str], None]

MALFORMED_KINDS = ("not_json", "missing_account", "bad_amount")


def generate_events(
    count: int, *, accounts: int = 500, malformed_every: int = 5000, seed: int = 7, account_offset: int = 0
) -> list[bytes]:
    """`count` JSON payment events; every `malformed_every`-th one is malformed in turn
    as not JSON, without an account, or with a non-numeric amount."""
    rng = random.Random(seed)
    base_ms = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    events: list[bytes] = []
    for i in range(count):
        event: dict[str, Any] = {
            "account": f"acct-{account_offset + rng.randrange(accounts):05d}",
            "amount_cents": rng.randrange(1, 100_000),
            "ts": base_ms + i * 10,
        }
        if malformed_every and i % malformed_every == malformed_every - 1:
            kind = MALFORMED_KINDS[(i // malformed_every) % len(MALFORMED_KINDS)]
            if kind == "not_json":
                events.append(f'{{"account": "acct-x", "amount_cents": {i}'.encode())  # truncated
                continue
            if kind == "missing_account":
                del event["account"]
            else:
                event["amount_cents"] = "twelve"
        events.append(json.dumps(event).encode())
    return events


@dataclass(frozen=True)
class SmokePipeline:
    """Names of the smoke pipeline's topic, consumer group and warehouse tables."""

    topic: str = "smoke.payments"
    partitions: int = 3
    group_id: str = "kappa-smoke"
    schema: str = "smoke"
    totals_table: str = "account_totals"
    rejects_table: str = "rejects"

    def tables(self) -> tuple[Table, Table]:
        metadata = MetaData(schema=self.schema)
        totals = Table(
            self.totals_table,
            metadata,
            Column("account", String(64), primary_key=True),
            Column("events", BigInteger, nullable=False),
            Column("amount_cents", BigInteger, nullable=False),
        )
        rejects = Table(
            self.rejects_table,
            metadata,
            # Flink's JDBC dialect does not quote column names: no reserved words here
            Column("source_partition", Integer, primary_key=True),
            Column("source_offset", BigInteger, primary_key=True),
            Column("reason", String(32), nullable=False),
            Column("payload", String, nullable=True),
            Column("run_label", String(32), nullable=False),
        )
        return totals, rejects

    def create_tables(self, warehouse: WarehouseResource, *, reset: bool) -> None:
        totals, rejects = self.tables()
        with warehouse.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            if reset:
                rejects.drop(conn, checkfirst=True)
                totals.drop(conn, checkfirst=True)
            totals.metadata.create_all(conn)
            for table in (totals, rejects):
                warehouse.grant_to_sink(conn, self.schema, table.name)

    def flink_sql(
        self,
        *,
        kafka_bootstrap: str,
        jdbc: dict[str, str],
        startup_mode: str,
        group_id: str | None = None,
        run_label: str = "run-1",
    ) -> tuple[list[str], list[str]]:
        """(setup statements, INSERT statements) of the job."""

        def with_options(options: dict[str, str]) -> str:
            return ",\n  ".join(f"'{k}' = '{v}'" for k, v in options.items())

        source = {
            "connector": "kafka",
            "topic": self.topic,
            "properties.bootstrap.servers": kafka_bootstrap,
            "properties.group.id": group_id or self.group_id,
            "scan.startup.mode": startup_mode,
            "properties.auto.offset.reset": "earliest",
            "format": "raw",
        }

        def jdbc_sink(table: str) -> dict[str, str]:
            return {
                "connector": "jdbc",
                "url": jdbc["url"],
                "table-name": f"{self.schema}.{table}",
                "username": jdbc["username"],
                "password": jdbc["password"],
                "sink.buffer-flush.interval": "1s",
                "sink.buffer-flush.max-rows": "5000",
            }

        setup = [
            f"""CREATE TEMPORARY TABLE smoke_source (
  payload STRING,
  `partition` INT METADATA VIRTUAL,
  `offset` BIGINT METADATA VIRTUAL
) WITH (
  {with_options(source)}
)""",
            """CREATE TEMPORARY VIEW smoke_parsed AS
SELECT
  payload,
  `partition`,
  `offset`,
  payload IS JSON OBJECT AS is_json,
  JSON_VALUE(payload, '$.account') AS account,
  TRY_CAST(JSON_VALUE(payload, '$.amount_cents') AS BIGINT) AS amount_cents
FROM smoke_source""",
            f"""CREATE TEMPORARY TABLE smoke_totals (
  account STRING,
  events BIGINT,
  amount_cents BIGINT,
  PRIMARY KEY (account) NOT ENFORCED
) WITH (
  {with_options(jdbc_sink(self.totals_table))}
)""",
            f"""CREATE TEMPORARY TABLE smoke_rejects (
  source_partition INT,
  source_offset BIGINT,
  reason STRING,
  payload STRING,
  run_label STRING,
  PRIMARY KEY (source_partition, source_offset) NOT ENFORCED
) WITH (
  {with_options(jdbc_sink(self.rejects_table))}
)""",
        ]
        valid = "is_json AND account IS NOT NULL AND amount_cents IS NOT NULL"
        inserts = [
            f"""INSERT INTO smoke_totals
SELECT account, COUNT(*) AS events, SUM(amount_cents) AS amount_cents
FROM smoke_parsed WHERE {valid}
GROUP BY account""",
            f"""INSERT INTO smoke_rejects
SELECT `partition`, `offset`,
  CASE WHEN NOT is_json THEN 'not_json'
       WHEN account IS NULL THEN 'missing_account'
       ELSE 'bad_amount' END,
  payload, '{run_label}'
FROM smoke_parsed WHERE NOT ({valid})""",
        ]
        return setup, inserts

    def read_totals(self, warehouse: WarehouseResource) -> dict[str, tuple[int, int]]:
        totals, _ = self.tables()
        with warehouse.connect() as conn:
            rows = conn.execute(select(totals.c.account, totals.c.events, totals.c.amount_cents))
            return {account: (int(events), int(amount)) for account, events, amount in rows}

    def read_rejects(self, warehouse: WarehouseResource) -> list[tuple[int, int, str, str]]:
        _, rejects = self.tables()
        with warehouse.connect() as conn:
            rows = conn.execute(
                select(
                    rejects.c.source_partition, rejects.c.source_offset, rejects.c.reason, rejects.c.run_label
                )
            )
            return [(int(p), int(o), str(r), str(label)) for p, o, r, label in rows]

    def count_rows(self, warehouse: WarehouseResource) -> int:
        totals, _ = self.tables()
        with warehouse.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(totals)).scalar_one())


def wait_for(
    condition: Callable[[], bool], *, what: str, timeout_s: float, on_wait: Callable[[], None] | None = None
) -> float:
    """Poll until `condition` holds; return the seconds it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_s:
            raise KappaError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        if on_wait is not None:
            on_wait()
        time.sleep(0.5)
    return time.monotonic() - start


def run_smoke(
    *,
    kafka: KafkaResource,
    flink: FlinkResource,
    warehouse: WarehouseResource,
    events: int,
    report: Report = print,
    timeout_s: float = 600.0,
) -> dict[str, float]:
    """The whole smoke path, printing each step; returns the measured figures."""
    pipeline = SmokePipeline()
    payloads = generate_events(events)
    expected: dict[str, tuple[int, int]] = {}
    malformed = 0
    for payload in payloads:
        try:
            event = json.loads(payload)
            account, amount = event["account"], event["amount_cents"]
            if not isinstance(amount, int):
                raise TypeError(amount)
        except (ValueError, KeyError, TypeError):
            malformed += 1
            continue
        n, total = expected.get(account, (0, 0))
        expected[account] = (n + 1, total + amount)

    report(f"[1/5] topic {pipeline.topic} ({pipeline.partitions} partitions), tables in {pipeline.schema}")
    if pipeline.topic in kafka.list_topics():
        kafka.delete_topic(pipeline.topic)
    kafka.create_topic(pipeline.topic, partitions=pipeline.partitions)
    pipeline.create_tables(warehouse, reset=True)

    report(f"[2/5] producing {len(payloads):,} events ({malformed} malformed)")
    started = time.monotonic()
    kafka.produce(pipeline.topic, payloads, key=lambda v: str(hash(v) % 1000))
    produce_s = time.monotonic() - started
    report(f"      produced in {produce_s:.1f}s ({len(payloads) / produce_s:,.0f} events/s)")

    report("[3/5] submitting the Flink SQL job (Kafka -> aggregate -> JDBC upsert)")
    setup, inserts = pipeline.flink_sql(
        kafka_bootstrap=kafka.bootstrap_servers,
        jdbc=warehouse.jdbc_options(),
        startup_mode="earliest-offset",
        group_id=f"{pipeline.group_id}-{int(time.time())}",
    )
    started = time.monotonic()
    job_id = flink.submit_sql(setup=setup, inserts=inserts, job_name="kappa-smoke")
    flink.wait_for_state(job_id, {"RUNNING"})
    report(f"      job {job_id} running")

    report(f"[4/5] waiting until {pipeline.schema}.{pipeline.totals_table} equals the expected aggregates")

    def progress() -> None:
        rows = pipeline.count_rows(warehouse)
        report(f"      {rows}/{len(expected)} accounts written")

    def caught_up() -> bool:
        return (
            pipeline.read_totals(warehouse) == expected and len(pipeline.read_rejects(warehouse)) == malformed
        )

    last = [0.0]

    def throttled_progress() -> None:
        state = flink.job(job_id).state
        if state != "RUNNING":
            cause = flink.job_exception(job_id) or ""
            raise KappaError(f"job {job_id} is {state}, not RUNNING: {cause[:2000]}")
        if time.monotonic() - last[0] > 5:
            last[0] = time.monotonic()
            progress()

    wait_for(caught_up, what="the table to match", timeout_s=timeout_s, on_wait=throttled_progress)
    elapsed = time.monotonic() - started
    rejects = pipeline.read_rejects(warehouse)
    by_reason: dict[str, int] = {}
    for _, _, reason, _ in rejects:
        by_reason[reason] = by_reason.get(reason, 0) + 1
    report(
        f"      table correct after {elapsed:.1f}s from submit: {len(payloads) / elapsed:,.0f} events/s "
        f"end to end; {len(expected)} accounts"
    )
    report(f"      malformed events kept in {pipeline.schema}.{pipeline.rejects_table}: {by_reason}")

    report(f"[5/5] cancelling job {job_id}")
    flink.cancel(job_id)
    return {
        "events": float(len(payloads)),
        "produce_events_per_s": len(payloads) / produce_s,
        "end_to_end_events_per_s": len(payloads) / elapsed,
        "seconds_to_correct_table": elapsed,
        "malformed": float(malformed),
    }
