"""The warehouse as a Dagster resource: one SQLAlchemy engine, opened lazily."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr
from sqlalchemy import Connection, Engine, create_engine, make_url

from kappa_orch.errors import ServiceUnavailable


class WarehouseResource(ConfigurableResource):  # type: ignore[type-arg]
    """A SQL warehouse reached through SQLAlchemy (PostgreSQL locally)."""

    url: str = Field(
        description="SQLAlchemy URL, e.g. postgresql+psycopg2://user:pass@127.0.0.1:5432/warehouse."
    )
    pool_size: int = Field(default=5, ge=1, description="Connections kept open per process.")
    connect_timeout_s: int = Field(default=10, ge=1, description="Timeout of one connection attempt.")

    _engine: Engine | None = PrivateAttr(default=None)

    def get_engine(self) -> Engine:
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
        try:
            with self.get_engine().connect() as conn:
                yield conn
        except Exception as exc:
            if _is_connection_error(exc):
                raise self._unavailable(exc) from exc
            raise

    def jdbc_options(self) -> dict[str, str]:
        """The Flink JDBC connector options that reach this warehouse."""
        url = make_url(self.url)
        if not url.drivername.startswith("postgresql"):
            raise ValueError(f"no JDBC mapping for {url.drivername!r}; only PostgreSQL is supported")
        return {
            "url": f"jdbc:postgresql://{url.host or '127.0.0.1'}:{url.port or 5432}/{url.database}",
            "username": url.username or "",
            "password": url.password or "",
        }

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        self.dispose()

    def _unavailable(self, exc: Exception) -> ServiceUnavailable:
        url = make_url(self.url)
        return ServiceUnavailable(
            f"the warehouse at {url.host}:{url.port}/{url.database} did not answer: "
            f"{str(exc).splitlines()[0]}",
            "check that PostgreSQL runs (`kappa-orch stack status`) and the URL is right",
        )


def _is_connection_error(exc: Any) -> bool:
    from sqlalchemy.exc import OperationalError

    return isinstance(exc, OperationalError) and "connect" in str(exc).lower()
