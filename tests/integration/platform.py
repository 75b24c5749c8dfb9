"""An isolated copy of the reference platform on the real stack: suffixed topics, a
database of its own, and the specs written to a folder (for the CLI)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from dagster import DagsterInstance, ExecuteInProcessResult, materialize
from sqlalchemy import create_engine, text

from assets import SPECS_DIR
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.lineage.resource import OpenLineageResource
from kappa_orch.registry import store as registry
from kappa_orch.resources.alerts import AlertResource
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.load import load_pipelines
from kappa_orch.spec.model import LoadedPipeline
from kappa_orch.stack.config import StackConfig
from kappa_orch.stack.postgres import PostgresService


@dataclass
class Platform:
    suffix: str
    specs: Path
    warehouse: WarehouseResource
    warehouse_url: str

    def pipelines(self) -> dict[str, LoadedPipeline]:
        return {p.name: p for p in load_pipelines(self.specs)}

    def set_sql(self, pipeline: str, sql: str) -> LoadedPipeline:
        (self.specs / f"{pipeline}.sql").write_text(sql)
        return self.pipelines()[pipeline]

    def topic(self, topic: str) -> str:
        return f"it.{self.suffix}.{topic}"

    def dead_letter_topic(self, pipeline: str) -> str:
        return f"it.{self.suffix}.dead-letters.{pipeline}"


def produce_authorizations(
    platform: Platform, kafka: KafkaResource, events: list[dict[str, Any]], *, event_timestamps: bool
) -> None:
    """Produce authorizations keyed by account (record timestamps = event times when asked)
    and keep them on the platform as `platform.events`, for the expected rows."""
    kafka.produce(
        platform.topic("payments.authorizations"),
        events,
        key=lambda e: e["account"],  # type: ignore[index]
        timestamp_ms=(lambda e: e["ts"]) if event_timestamps else None,  # type: ignore[index]
    )
    platform.events = events  # type: ignore[attr-defined]


def cli_env(platform: Platform, stack: StackConfig, **extra: str) -> dict[str, str]:
    """The environment a `kappa-orch` command needs to act on this platform (no
    DAGSTER_HOME: its runs are recorded in the local stack's instance, .kappa/dagster)."""
    env = {
        **{k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"},
        "KAPPA_SPECS": str(platform.specs),
        "KAPPA_WAREHOUSE_URL": platform.warehouse_url,
        "KAPPA_WAREHOUSE_READER_URL": platform.warehouse.reader_url or platform.warehouse_url,
        "KAPPA_WAREHOUSE_SINK_URL": platform.warehouse.sink_url or platform.warehouse_url,
        "KAPPA_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "KAPPA_FLINK_REST_URL": stack.flink_rest_url,
        "KAPPA_SQL_GATEWAY_URL": stack.sql_gateway_url,
        "KAPPA_FLINK_TLS_CA": str(stack.flink_tls_ca),
        "KAPPA_FLINK_TLS_CERT": str(stack.flink_tls_cert),
    }
    return {**env, **extra}


KAPPA = str(Path(sys.executable).parent / "kappa-orch")


def resources_for(kafka: KafkaResource, flink: FlinkResource, warehouse: WarehouseResource) -> dict[str, Any]:
    """The resources a run of kappa_orch's assets, checks and jobs takes here: the stack's
    services, the platform's warehouse, and OpenLineage to this worker's file
    (KAPPA_OPENLINEAGE, whose events are checked after every test)."""
    openlineage = OpenLineageResource.of(
        transport=os.environ.get("KAPPA_OPENLINEAGE", "none"),
        deployment=flink.deployment,
        bootstrap=kafka.bootstrap_servers,
        warehouse_url=str(warehouse.url),
        home=Path("."),
    )
    return {
        "kafka": kafka,
        "flink": flink,
        "warehouse": warehouse,
        "openlineage": openlineage,
        "alerts": AlertResource(),
    }


def own_jobs(flink: FlinkResource) -> set[str]:
    """The ids of this deployment's jobs on the cluster (every job kappa_orch submits is
    named after its deployment; other workers' tests run theirs beside them)."""
    prefix = flink.job_name("")
    return {j.job_id for j in flink.list_jobs() if j.name.startswith(prefix)}


def observe_once(
    platform: Platform,
    kafka: KafkaResource,
    flink: FlinkResource,
    cursor: str | None,
    alerts: AlertResource | None = None,
) -> tuple[list[Any], str | None]:
    """One tick of the stream observation sensor over the platform's pipelines: its
    events (observations and check evaluations) and its cursor (`alerts`: where its
    health alerts go; default none)."""
    from dagster import build_sensor_context

    from kappa_orch.dagster.observe import stream_observation_sensor

    sensor = stream_observation_sensor(list(platform.pipelines().values()))
    resources = resources_for(kafka, flink, platform.warehouse)
    resources["alerts"] = alerts or resources["alerts"]
    with build_sensor_context(resources=resources, cursor=cursor) as context:
        result = sensor(context)
    return list(getattr(result, "asset_events", [])), getattr(result, "cursor", cursor)


def start_cli(platform: Platform, stack: StackConfig, *args: str) -> subprocess.Popen[str]:
    """`kappa-orch <args>` on this platform in the background, its output piped."""
    return subprocess.Popen(
        [KAPPA, *args],
        env=cli_env(platform, stack),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


# daily_spend's SQL counts approved authorizations; the changed spec counts declined too
ORIGINAL = "WHERE status = 'approved'"
ALL_STATUSES = "WHERE status IN ('approved', 'declined')"


def count_declined_too(platform: Platform) -> LoadedPipeline:
    """daily_spend's spec changed: declined authorizations count too (a new fingerprint)."""
    sql = platform.pipelines()["daily_spend"].sql_text
    return platform.set_sql("daily_spend", sql.replace(ORIGINAL, ALL_STATUSES))


def run_reprocess(
    platform: Platform, pipeline: LoadedPipeline, kafka: KafkaResource, flink: FlinkResource
) -> ExecuteInProcessResult:
    """What a launched reprocess run executes: the pipeline's version and alias assets."""
    from kappa_orch import pipeline_assets
    from kappa_orch.dagster.assets import alias_key, version_key

    return materialize(
        pipeline_assets([pipeline]),
        selection=[version_key(pipeline.spec), alias_key(pipeline.spec)],
        resources=resources_for(kafka, flink, platform.warehouse),
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


@contextmanager
def isolated_platform(
    stack: StackConfig,
    kafka: KafkaResource,
    flink: FlinkResource,
    folder: Path,
    *,
    only: list[str] | None = None,
    topic_config: dict[str, str] | None = None,
) -> Iterator[Platform]:
    suffix = uuid.uuid4().hex[:8]
    specs = folder / "specs"
    specs.mkdir()
    for pipeline in load_pipelines(SPECS_DIR):
        if only is not None and pipeline.name not in only:
            continue
        raw = yaml.safe_load(Path(pipeline.path).read_text())
        for source in raw["sources"]:
            source["topic"] = f"it.{suffix}.{source['topic']}"
        raw["dead_letters"] = {"topic": f"it.{suffix}.dead-letters.{raw['name']}"}
        (specs / Path(pipeline.path).name).write_text(yaml.safe_dump(raw, sort_keys=False))
        shutil.copy(SPECS_DIR / raw["sql"], specs / raw["sql"])
    database = f"it_{suffix}"
    # made by the stack's admin, owned by the orchestrator's role, with the reader's and
    # the sinks' roles as on the stack's own warehouse
    postgres = PostgresService(stack)
    postgres.provision_database(database)
    admin = create_engine(postgres.admin_url(), isolation_level="AUTOCOMMIT")
    url = stack.warehouse_url_of(database)
    warehouse: WarehouseResource = stack.platform(database).resources()["warehouse"]
    platform = Platform(suffix, specs, warehouse, url)
    topics = sorted({s.topic for p in platform.pipelines().values() for s in p.spec.sources})
    for topic in topics:
        # unlimited retention: sample events carry 2026-01 timestamps, which the broker's
        # default 7-day retention would delete at its next check
        kafka.create_topic(topic, partitions=3, config={"retention.ms": "-1", **(topic_config or {})})
    try:
        yield platform
    finally:
        with warehouse.begin() as conn:
            registry.migrate(conn)
            jobs = [r.flink_job_id for r in registry.all_versions(conn) if r.flink_job_id]
        for job_id in jobs:
            if flink.job_state(job_id) not in {"CANCELED", "FINISHED", "FAILED", "UNKNOWN"}:
                flink.cancel(job_id)
        warehouse.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{database}" WITH (FORCE)'))
        admin.dispose()
        for topic in topics + [p.spec.dead_letter_topic for p in platform.pipelines().values()]:
            if topic in kafka.list_topics():
                kafka.delete_topic(topic)
