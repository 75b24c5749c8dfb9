"""The warehouse as a Dagster resource: one SQLAlchemy engine, opened lazily."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr
from sqlalchemy import Connection, Engine, create_engine, make_url, text

from kappa_orch.errors import ServiceError, ServiceUnavailable
from kappa_orch.spec.model import INPUT_COUNTS_TABLE

# pgjdbc's authentication plugin that the local stack puts beside the driver in Flink's lib/
# (kappa_orch/stack/java): it derives a job role's password from KAPPA_JOB_KEY
JOB_PASSWORD_PLUGIN = "io.kappaorch.jdbc.JobPassword"


def job_password(key: str, role: str) -> str:
    """A job role's password: hex HMAC-SHA256 of "kappa-job:<role>" under the job key (what
    JobPassword.java derives in Flink's processes)."""
    import hmac

    return hmac.new(key.encode(), f"kappa-job:{role}".encode(), hashlib.sha256).hexdigest()


class WarehouseResource(ConfigurableResource):  # type: ignore[type-arg]
    """A SQL warehouse reached through SQLAlchemy (PostgreSQL locally)."""

    url: str = Field(
        description="SQLAlchemy URL, e.g. postgresql+psycopg2://user:pass@127.0.0.1:5432/warehouse."
    )
    reader_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of a read-only role, for the gate's and the scheduled checks' "
            "expectations (default: url). The local stack's is kappa_reader."
        ),
    )
    sink_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the role Flink's JDBC sinks write with (default: url). It is "
            "granted each version and staging table it writes, and nothing else. The local "
            "stack's is kappa_sink."
        ),
    )
    job_key: str | None = Field(
        default=None,
        description=(
            "The key each job role's password is derived from (HMAC-SHA256), shared with the Flink "
            "cluster (KAPPA_JOB_KEY): the JDBC sinks derive the password themselves, so none is in a "
            "job's SQL text. Without it the password is a connector option, as for warehouses "
            "without job roles."
        ),
    )
    pool_size: int = Field(default=5, ge=1, description="Connections kept open per process.")
    connect_timeout_s: int = Field(default=10, ge=1, description="Timeout of one connection attempt.")

    _engine: Engine | None = PrivateAttr(default=None)

    def get_engine(self) -> Engine:
        """The SQLAlchemy engine, made on first use."""
        if self._engine is None:
            self._engine = create_engine(
                self.url,
                pool_size=self.pool_size,
                pool_pre_ping=True,
                connect_args={"connect_timeout": self.connect_timeout_s},
            )
        return self._engine

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection inside one transaction, committed on success."""
        try:
            with self.get_engine().begin() as conn:
                yield conn
        except Exception as exc:
            if _is_connection_error(exc):
                raise self._unavailable(exc) from exc
            raise

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection without a transaction of its own (a warehouse that does not answer
        raises ServiceUnavailable)."""
        try:
            with self.get_engine().connect() as conn:
                yield conn
        except Exception as exc:
            if _is_connection_error(exc):
                raise self._unavailable(exc) from exc
            raise

    @property
    def checks_url(self) -> str:
        """Where expectations run: the read-only role when there is one."""
        return self.reader_url or self.url

    def sink_role(self) -> str | None:
        """The sinks' role when it is not the orchestrator's own (then it needs grants)."""
        if not self.sink_url:
            return None
        sink, own = make_url(self.sink_url).username, make_url(self.url).username
        return sink if sink and sink != own else None

    def grant_to_sink(self, conn: Connection, schema: str, table: str, *, read_only: bool = False) -> None:
        """Let the sinks' role write (or only read) one table; nothing when there is none."""
        role = self.sink_role()
        if role is None:
            return
        if read_only:
            # a table of someone else's (a bootstrap snapshot): granted by its owner, or here
            can = conn.execute(
                text("SELECT has_table_privilege(:role, :table, 'SELECT')"),
                {"role": role, "table": f'"{schema}"."{table}"'},
            ).scalar()
            owned = conn.execute(
                text(
                    "SELECT pg_has_role(current_user, tableowner, 'USAGE') FROM pg_tables "
                    "WHERE schemaname = :schema AND tablename = :table"
                ),
                {"schema": schema, "table": table},
            ).scalar()
            if can:
                return
            if not owned:
                raise ServiceError(
                    f"the sinks' role {role!r} may not read {schema}.{table}, which the Flink job reads",
                    f'grant it: GRANT USAGE ON SCHEMA "{schema}" TO "{role}"; '
                    f'GRANT SELECT ON "{schema}"."{table}" TO "{role}"',
                    blame="infrastructure",
                )
        privileges = "SELECT" if read_only else "SELECT, INSERT, UPDATE, DELETE"
        conn.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))
        conn.execute(text(f'GRANT {privileges} ON "{schema}"."{table}" TO "{role}"'))

    def job_jdbc_options(
        self,
        conn: Connection,
        *,
        job: str,
        writes: Sequence[str],
        reads: Sequence[str] = (),
        pipeline: str | None = None,
        version: int | None = None,
    ) -> dict[str, str]:
        """The JDBC options of one Flink job (`job`, e.g. "daily_spend:v3"): its own role,
        which writes `writes` (schema.table) and its input-count rows (`pipeline`,
        `version`) and reads `reads`, when the warehouse offers job roles (the local
        stack does: kappa_grants.job_role); else the sinks' role, granted the tables."""
        if not self._offers_job_roles(conn):
            for qualified in writes:
                self.grant_to_sink(conn, *qualified.split(".", 1))
            for qualified in reads:
                self.grant_to_sink(conn, *qualified.split(".", 1), read_only=True)
            if pipeline is not None:
                self.grant_to_sink(conn, *INPUT_COUNTS_TABLE.split(".", 1))
            return self.jdbc_options()
        role = self.job_role(conn, job)
        derived = job_password(self.job_key, role) if self.job_key else None
        secret = conn.execute(
            text("SELECT kappa_grants.job_role(:role, :writes, :reads, :pipeline, :version, :password)"),
            {
                "role": role,
                "writes": list(writes),
                "reads": list(reads),
                "pipeline": pipeline,
                "version": version,
                "password": derived,
            },
        ).scalar()
        if derived is None:
            return {**self.jdbc_options(), "username": role, "password": str(secret)}
        # the sink derives the password from KAPPA_JOB_KEY itself: none in the SQL text
        url = self.jdbc_options()["url"]
        return {"url": f"{url}&user={role}&authenticationPluginClassName={JOB_PASSWORD_PLUGIN}"}

    def drop_job_role(self, conn: Connection, job: str) -> None:
        """The job's role goes with the job (nothing when the warehouse has no job roles)."""
        if self._offers_job_roles(conn):
            conn.execute(text("SELECT kappa_grants.drop_job_role(:role)"), {"role": self.job_role(conn, job)})

    @staticmethod
    def job_role(conn: Connection, job: str) -> str:
        """Roles are the server's, not a database's: the name holds the database too."""
        database = conn.execute(text("SELECT current_database()")).scalar()
        return "kappa_job_" + hashlib.sha256(f"{database}/{job}".encode()).hexdigest()[:20]

    @staticmethod
    def _offers_job_roles(conn: Connection) -> bool:
        found = conn.execute(
            text("SELECT to_regprocedure('kappa_grants.job_role(text, text[], text[], text, integer, text)')")
        ).scalar()
        return found is not None

    def jdbc_options(self) -> dict[str, str]:
        """The Flink JDBC connector options that reach this warehouse (as the sinks' role)."""
        url = make_url(self.sink_url or self.url)
        if not url.drivername.startswith("postgresql"):
            raise ValueError(f"no JDBC mapping for {url.drivername!r}; only PostgreSQL is supported")
        # pgjdbc sends a sink's batch as multi-row INSERTs (up to 128 rows a statement)
        # instead of one statement a row: the upsert's rate nearly doubles (bench/limits.py).
        # Safe for the upsert: Flink's JDBC sink keeps one row per key in a batch, so no
        # statement updates a row twice.
        return {
            "url": f"jdbc:postgresql://{url.host or '127.0.0.1'}:{url.port or 5432}/{url.database}"
            "?reWriteBatchedInserts=true",
            "username": url.username or "",
            "password": url.password or "",
        }

    def dispose(self) -> None:
        """Close the engine's pooled connections."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        """Dagster's hook at the end of a run: close the pool."""
        self.dispose()

    def _unavailable(self, exc: Exception) -> ServiceUnavailable:
        url = make_url(self.url)
        return ServiceUnavailable(
            f"the warehouse at {url.host}:{url.port}/{url.database} did not answer: "
            f"{str(exc).splitlines()[0]}",
            "check that PostgreSQL runs (`kappa-orch stack status`) and the URL is right"
            + _password_hint(url.password, str(exc)),
        )


def _password_hint(password: str | None, error: str) -> str:
    """What to do when the server wants a password the URL does not carry or refuses it."""
    if "password" not in error:
        return ""
    if not password:
        return (
            "; the URL has no password: start the local stack (`kappa-orch stack up`, which makes "
            'its roles\' passwords), or set KAPPA_WAREHOUSE_URL (`eval "$(kappa-orch stack env)"`)'
        )
    return "; the password was refused: take the URLs `kappa-orch stack env` prints for this stack"


def _is_connection_error(exc: Any) -> bool:
    from sqlalchemy.exc import OperationalError

    return isinstance(exc, OperationalError) and "connect" in str(exc).lower()
