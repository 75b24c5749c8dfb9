"""The registry's tables and their migrations: created and upgraded automatically, once
per process and warehouse (`session()`)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    select,
    text,
)

from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.model import COUNTS_SCHEMA as COUNTS_SCHEMA
from kappa_orch.spec.model import INPUT_COUNTS_TABLE as INPUT_COUNTS_TABLE
from kappa_orch.spec.model import REGISTRY_SCHEMA

SCHEMA = REGISTRY_SCHEMA


metadata = MetaData(schema=SCHEMA)

migrations_table = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

versions = Table(
    "versions",
    metadata,
    Column("pipeline", String(63), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("physical_table", String(127), nullable=False),
    Column("state", String(16), nullable=False),
    Column("flink_job_id", String(64)),
    Column("group_id", String(127), nullable=False),
    Column("deployed_offsets", JSON),
    Column("error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("check_results", JSON),  # migration 2
    Column("replaced_at", DateTime(timezone=True)),  # migration 2: when the alias moved away from it
    Column("late_records", JSON),  # migration 6: {operator: records dropped as late} at the gate
    # migration 7: the version's own definition (target columns and key, SQL, spec text),
    # so a swap, a rollback or a roll-forward builds the alias from the version itself
    Column("definition", JSON),
    # migration 12: the newest completed checkpoint of the version's job as Flink reported
    # it ({job_id, checkpoint_id, path, completed_at_ms}): a job the cluster forgot (a
    # JobManager restarted without HA) resumes from it, never from a folder listing
    Column("checkpoint", JSON),
    # migration 13: {topic: Kafka topic id} of each source when the job was deployed: a
    # topic deleted and created again under the job (offsets from 0 again) is noticed
    Column("source_topic_ids", JSON),
    Column("logs_accepted", JSON),  # migration 13: replaced logs a person accepted (who, why)
    UniqueConstraint("pipeline", "fingerprint", name="versions_pipeline_fingerprint_key"),
)

# migration 14: the compiled plan each version's job was started from (the engine's
# canonical form: operator ids derived from content), kept so that a redeploy runs the
# same plan and a later change can be compared with it
version_plans = Table(
    "version_plans",
    metadata,
    Column("pipeline", String(63), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("fingerprint", String(64), nullable=False),  # what the plan computes, not where
    Column("stateful", JSON, nullable=False),  # the operator ids of its stateful nodes
    Column("document", Text, nullable=False),  # the plan as the engine executes it
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# changes that wait for a person (plan.change.needs_approval), and who approved them
approvals = Table(
    "approvals",
    metadata,
    Column("pipeline", String(63), primary_key=True),
    Column("plan_id", String(32), primary_key=True),
    Column("fingerprint", String(64), nullable=False),  # the spec fingerprint it would deploy
    Column("kind", String(32), nullable=False),
    Column("reasons", JSON, nullable=False),  # why it waits, and the change's own reasons
    Column("cost", JSON, nullable=False),  # events to read, rows to derive, estimated seconds
    Column("requested_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("approved_by", Text),
    Column("approved_at", DateTime(timezone=True)),
)

# what each alert's receivers were last told: one row per dedup key (issue 29, point 2)
alerts = Table(
    "alerts",
    metadata,
    Column("dedup_key", String(255), primary_key=True),
    Column("pipeline", String(63), nullable=False),
    Column("check_name", String(127), nullable=False),
    Column("firing", Boolean, nullable=False),
    Column("summary", Text, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # receivers that have not taken the current state yet (sent again at the next evaluation)
    Column("undelivered", JSON, nullable=False),
)

aliases = Table(
    "aliases",
    metadata,
    Column("pipeline", String(63), primary_key=True),
    Column("alias", String(127), nullable=False, unique=True),
    Column("live_version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


swaps = Table(
    "swaps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pipeline", String(63), nullable=False),
    Column("alias", String(127), nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("run_id", String(64)),
    Column("git_commit", String(64)),
    Column("swapped_by", String(127)),
    Column("swapped_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # migration 9: failed checks an operator accepted for the target: {check: "who: why"}
    Column("accepted", JSON),
)

# migration 11: the last outcome of each scheduled data-quality check (what `status` shows)
scheduled_checks = Table(
    "scheduled_checks",
    metadata,
    Column("pipeline", String(63), primary_key=True),
    Column("check_name", String(63), primary_key=True),
    Column("passed", Boolean, nullable=False),
    Column("summary", Text, nullable=False),
    Column("run_id", String(64)),
    Column("checked_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

claims = Table(
    "claims",
    metadata,
    # a pipeline's name, or "repair:<name>" for its repair (migration 8 widened it)
    Column("pipeline", String(127), primary_key=True),
    Column("owner", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


batch_days = Table(
    "batch_days",
    metadata,
    Column("pipeline", String(63), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("rows", Integer, nullable=False),
    Column("read_until", JSON, nullable=False),  # {topic: {partition: end offset when the day was computed}}
    Column("materialized_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("check_failed_at", DateTime(timezone=True)),  # migration 5: a scheduled check failed on it
    Column("check_failure", Text),  # migration 5
)


# written by each version's Flink job (JDBC upsert), one row per source partition; in a
# schema of its own, so that the registry is written by the orchestrator's role only
input_counts = Table(
    "input_counts",
    metadata,
    Column("pipeline", String(63), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("source_topic", String(255), primary_key=True),
    Column("kafka_partition", Integer, primary_key=True),
    Column("records", BigInteger, nullable=False),
    Column("parsed", BigInteger, nullable=False),
    Column("dead_lettered", BigInteger, nullable=False),
    # migration 13: of the dead-lettered, those that arrived behind the watermark
    Column("late", BigInteger, nullable=False, server_default="0"),
    Column("first_offset", BigInteger, nullable=False),
    Column("last_offset", BigInteger, nullable=False),
    # migration 13: `<pipeline>|<version>|<topic>|<partition>`, the key the job upserts on
    # (its aggregate's own group key: Flink then sends no UPDATE_BEFORE, see flink_sql)
    Column("counter_key", Text),
    Index("input_counts_counter_key", "counter_key", unique=True),
    schema=COUNTS_SCHEMA,
)

# what a version started from another's savepoint carried over (issue 26): the other
# version's input counts at the fence, per source partition; its own job counts from there
carried_counts = Table(
    "carried_counts",
    metadata,
    # input_counts' own columns (its key and counts), without the job's upsert key
    *[
        Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
        for c in input_counts.columns
        if c.name not in ("counter_key", "late")
    ],
    Column("late", BigInteger, nullable=False),
    Column("from_version", Integer, nullable=False),
)


def _migration_1(conn: Connection) -> None:
    # on a new warehouse this creates today's `versions`; the ADD COLUMN IF NOT EXISTS of
    # later migrations upgrade one created by an older kappa_orch
    metadata.create_all(conn, tables=[versions, aliases])


def _migration_2(conn: Connection) -> None:
    metadata.create_all(conn, tables=[swaps, claims])
    conn.execute(text(f'ALTER TABLE "{SCHEMA}".versions ADD COLUMN IF NOT EXISTS check_results JSON'))
    conn.execute(
        text(f'ALTER TABLE "{SCHEMA}".versions ADD COLUMN IF NOT EXISTS replaced_at TIMESTAMP WITH TIME ZONE')
    )


def _migration_3(conn: Connection) -> None:
    metadata.create_all(conn, tables=[batch_days])


def _migration_4(conn: Connection) -> None:
    conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{COUNTS_SCHEMA}"'))
    metadata.create_all(conn, tables=[input_counts])


def _migration_5(conn: Connection) -> None:
    for column, kind in (("check_failed_at", "TIMESTAMP WITH TIME ZONE"), ("check_failure", "TEXT")):
        conn.execute(text(f'ALTER TABLE "{SCHEMA}".batch_days ADD COLUMN IF NOT EXISTS {column} {kind}'))


def _migration_6(conn: Connection) -> None:
    conn.execute(text(f'ALTER TABLE "{SCHEMA}".versions ADD COLUMN IF NOT EXISTS late_records JSON'))


def _migration_7(conn: Connection) -> None:
    conn.execute(text(f'ALTER TABLE "{SCHEMA}".versions ADD COLUMN IF NOT EXISTS definition JSON'))


def _migration_8(conn: Connection) -> None:
    conn.execute(text(f'ALTER TABLE "{SCHEMA}".claims ALTER COLUMN pipeline TYPE VARCHAR(127)'))


def _migration_9(conn: Connection) -> None:
    conn.execute(text(f'ALTER TABLE "{SCHEMA}".swaps ADD COLUMN IF NOT EXISTS accepted JSON'))


def _migration_10(conn: Connection) -> None:
    # the counts leave the registry: Flink's sinks write them, and the registry is
    # written by the orchestrator's role only
    conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{COUNTS_SCHEMA}"'))
    if conn.execute(text(f"SELECT to_regclass('{SCHEMA}.input_counts')")).scalar() is not None:
        conn.execute(text(f'ALTER TABLE "{SCHEMA}".input_counts SET SCHEMA "{COUNTS_SCHEMA}"'))
    metadata.create_all(conn, tables=[input_counts])


def _migration_11(conn: Connection) -> None:
    metadata.create_all(conn, tables=[scheduled_checks])


def _migration_12(conn: Connection) -> None:
    conn.execute(text(f'ALTER TABLE "{SCHEMA}".versions ADD COLUMN IF NOT EXISTS checkpoint JSON'))


def _migration_13(conn: Connection) -> None:
    counts = f'"{COUNTS_SCHEMA}".input_counts'
    conn.execute(text(f"ALTER TABLE {counts} ADD COLUMN IF NOT EXISTS late BIGINT NOT NULL DEFAULT 0"))
    conn.execute(text(f"ALTER TABLE {counts} ADD COLUMN IF NOT EXISTS counter_key TEXT"))
    index = "input_counts_counter_key"
    conn.execute(text(f"CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {counts} (counter_key)"))
    for column in ("source_topic_ids", "logs_accepted"):
        conn.execute(text(f'ALTER TABLE "{SCHEMA}".versions ADD COLUMN IF NOT EXISTS {column} JSON'))


def _migration_14(conn: Connection) -> None:
    metadata.create_all(conn, tables=[version_plans])


def _migration_15(conn: Connection) -> None:
    metadata.create_all(conn, tables=[carried_counts])


def _migration_16(conn: Connection) -> None:
    metadata.create_all(conn, tables=[approvals])


def _migration_17(conn: Connection) -> None:
    metadata.create_all(conn, tables=[alerts])


# append only: each entry runs once per warehouse, in order
MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _migration_1),
    (2, _migration_2),
    (3, _migration_3),
    (4, _migration_4),
    (5, _migration_5),
    (6, _migration_6),
    (7, _migration_7),
    (8, _migration_8),
    (9, _migration_9),
    (10, _migration_10),
    (11, _migration_11),
    (12, _migration_12),
    (13, _migration_13),
    (14, _migration_14),
    (15, _migration_15),
    (16, _migration_16),
    (17, _migration_17),
]


def lock(conn: Connection, name: str) -> None:
    """A transaction-scoped advisory lock: one writer per name at a time."""
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def lock_pipeline(conn: Connection, pipeline: str) -> None:
    """The one writer of a pipeline's versions and alias at a time (deploy, swap, repair,
    retire), until the transaction ends."""
    lock(conn, f"pipeline:{pipeline}")


# the registries this process migrated (their URLs, without password): see session(),
# through which every step reads and writes the registry
MIGRATED: set[str] = set()


@contextmanager
def session(warehouse: WarehouseResource) -> Iterator[Connection]:
    """`warehouse.begin()` on a registry brought up to date: migrated once per process and
    warehouse (the first call here migrates, later calls trust it)."""
    key = warehouse.get_engine().url.render_as_string(hide_password=True)
    with warehouse.begin() as conn:
        if key not in MIGRATED:
            migrate(conn)
        yield conn
    MIGRATED.add(key)


def migrate(conn: Connection) -> int:
    """Create or upgrade the registry (idempotent, safe to race); return its schema version.

    Every deploy, sensor tick and CLI call begins here: an up-to-date registry is seen
    with two reads, without the lock and the DDL.
    """
    latest = max(number for number, _ in MIGRATIONS)
    exists = conn.execute(text(f"SELECT to_regclass('{SCHEMA}.schema_migrations')")).scalar() is not None
    if exists and conn.execute(select(func.max(migrations_table.c.version))).scalar() == latest:
        return latest
    lock(conn, "kappa_registry.migrate")
    conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"'))
    metadata.create_all(conn, tables=[migrations_table])
    applied = set(conn.execute(select(migrations_table.c.version)).scalars())
    for number, step in MIGRATIONS:
        if number not in applied:
            step(conn)
            conn.execute(insert(migrations_table).values(version=number))
    return latest
