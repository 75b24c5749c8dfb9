"""OpenLineage as a Dagster resource: where a deployment's events go and the names its
datasets and jobs get. Runs find what they tell OpenLineage here (`lineage()`), never in
a process-wide setting; `PlatformConfig.resources()` makes it from the deployment's
`openlineage` setting (KAPPA_OPENLINEAGE)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from kappa_orch.lineage.emit import LOG, emitter_for
from kappa_orch.lineage.events import Names
from kappa_orch.lineage.graph import kafka_namespace, postgres_namespace
from kappa_orch.lineage.ops import Lineage


class OpenLineageResource(ConfigurableResource):  # type: ignore[type-arg]
    """Where kappa_orch's OpenLineage events go, and the names of what they describe."""

    transport: str = Field(
        "none",
        description="http://host:port[/path], file:/path/events.jsonl, console, kafka://host:port/topic "
        "or none (the deployment's `openlineage` setting, KAPPA_OPENLINEAGE).",
    )
    deployment: str = Field("default", description="The deployment: jobs are in namespace kappa-orch.<it>.")
    kafka_namespace: str = Field("kafka://localhost:9092", description="kafka://host:port of the topics.")
    postgres_namespace: str = Field(
        "postgres://localhost:5432", description="postgres://host:port of tables."
    )
    database: str = Field("warehouse", description="The warehouse database the tables are in.")
    home: str = Field(".", description="Folder a relative file: transport is under.")

    @classmethod
    def of(
        cls, *, transport: str, deployment: str, bootstrap: str, warehouse_url: str, home: Path
    ) -> OpenLineageResource:
        """The resource of a deployment (the warehouse URL's credentials are not kept)."""
        postgres, database = postgres_namespace(warehouse_url)
        return cls(
            transport=transport,
            deployment=deployment,
            kafka_namespace=kafka_namespace(bootstrap),
            postgres_namespace=postgres,
            database=database,
            home=str(home),
        )

    def lineage(self, warn: Callable[[str], None] = LOG.warning) -> Lineage:
        """What a run tells OpenLineage (through one emitter per destination in the
        process); an event that is not delivered is told to `warn`."""
        names = Names(self.deployment, self.kafka_namespace, self.postgres_namespace, self.database)
        return Lineage(emitter_for(self.transport, names, home=Path(self.home), warn=warn))
