"""The platform's configuration in one place: where the specs, Kafka, Flink and the
warehouse are, and how the deployment's automation runs.

Built once (`PlatformConfig.from_env`) from flags, then KAPPA_* variables, then the
caller's defaults, then the local stack's defaults; used by the CLI, the resources,
`build_kappa_definitions`, the reference deployment, tests and benches. Nothing else in
kappa_orch reads a KAPPA_* variable for these settings.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kappa_orch.errors import SpecError
from kappa_orch.spec.model import parse_duration

# the local stack's roles (kappa-orch stack up makes them, each with a random password kept
# in a file under the stack's folder only its owner reads; `stack env` prints their URLs)
LOCAL_ROLES = {"orchestrator": "kappa", "reader": "kappa_reader", "sink": "kappa_sink"}
# the folder of those password files, under the stack's home
PASSWORDS_DIR = Path("secrets")
# beside them, the local Flink cluster's certificate (clients verify it) and the
# certificate and key its clients authenticate with (mutual TLS; kappa_orch.stack.flink_security)
FLINK_TLS_CA = "flink-ca.pem"
FLINK_TLS_CERT = "flink-client.pem"


def local_url(
    home: Path, role: str = "orchestrator", *, port: int = 5432, database: str = "warehouse"
) -> str:
    """The URL of one of the local stack's roles, with the password `stack up` made for it
    (none when the stack in `home` was never started: the server then asks for one)."""
    user = LOCAL_ROLES[role]
    try:
        password = (home / PASSWORDS_DIR / user).read_text().strip()
    except OSError:
        password = ""
    login = f"{user}:{password}" if password else user
    return f"postgresql+psycopg2://{login}@127.0.0.1:{port}/{database}"


# each setting's environment variable
VARIABLES: dict[str, str] = {
    "specs": "KAPPA_SPECS",
    "home": "KAPPA_HOME",
    "kafka_bootstrap": "KAPPA_KAFKA_BOOTSTRAP",
    "flink_rest_url": "KAPPA_FLINK_REST_URL",
    "sql_gateway_url": "KAPPA_SQL_GATEWAY_URL",
    "flink_tls_ca": "KAPPA_FLINK_TLS_CA",
    "flink_tls_cert": "KAPPA_FLINK_TLS_CERT",
    "flink_plan_dir": "KAPPA_FLINK_PLAN_DIR",
    "warehouse_url": "KAPPA_WAREHOUSE_URL",
    "warehouse_reader_url": "KAPPA_WAREHOUSE_READER_URL",
    "warehouse_sink_url": "KAPPA_WAREHOUSE_SINK_URL",
    "job_key": "KAPPA_JOB_KEY",
    "git_commit": "KAPPA_GIT_COMMIT",
    "data_quality_cron": "KAPPA_DATA_QUALITY_CRON",
    "topic_partitions": "KAPPA_TOPIC_PARTITIONS",
    "topic_retention": "KAPPA_TOPIC_RETENTION",
    "dead_letter_retention": "KAPPA_DEAD_LETTER_RETENTION",
    "dagster_url": "KAPPA_DAGSTER_URL",
    "deployment": "KAPPA_DEPLOYMENT",
    "openlineage": "KAPPA_OPENLINEAGE",
    "alerts": "KAPPA_ALERTS",
}
# the local stack's job key, under its home (made by kappa_orch.stack.flink.job_key)
JOB_KEY_FILE = Path("flink") / "job-key"
# the local stack's folder of compiled plans (written by its SQL Gateway and by kappa_orch)
PLANS_DIR = Path("flink") / "plans"
# how long one alert receiver may take to answer
ALERT_TIMEOUT_S = 5.0
# settings that carry a password: Dagster gets them as EnvVars when they came from one
SECRETS = frozenset({"warehouse_url", "warehouse_reader_url", "warehouse_sink_url", "job_key", "alerts"})


class PlatformConfig(BaseModel):
    """Where everything is. Defaults describe the local stack `kappa-orch stack up` starts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specs: Path = Field(Path("assets"), description="Folder of pipeline specs.")
    home: Path = Field(Path(".kappa"), description="The local stack's folder (checkpoints, logs).")
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers.")
    flink_rest_url: str = Field("https://127.0.0.1:8081", description="Flink REST endpoint.")
    sql_gateway_url: str = Field("https://127.0.0.1:8083", description="Flink SQL Gateway endpoint.")
    flink_tls_ca: Path | None = Field(
        None,
        description="PEM certificate(s) that Flink's REST API and SQL Gateway present over https "
        "(default: the local stack's, <home>/secrets/flink-ca.pem; else the system's CAs).",
    )
    flink_tls_cert: Path | None = Field(
        None,
        description="PEM file with the client certificate and key for Flink endpoints that ask for "
        "one (mutual TLS; default: the local stack's, <home>/secrets/flink-client.pem).",
    )
    flink_plan_dir: str | None = Field(
        None,
        description="A folder both the SQL Gateway and kappa_orch read and write, where each version's "
        "compiled plan is kept and its job started from (default: the local stack's <home>/flink/plans "
        "when it exists; `none`: jobs run as statement sets with Flink's automatic operator ids).",
    )
    warehouse_url: str = Field(
        "",
        repr=False,
        description="SQLAlchemy URL of the orchestrator's role (default: the local stack's kappa, "
        "with the password `stack up` made for it under home).",
    )
    warehouse_reader_url: str | None = Field(
        None, repr=False, description="URL of the read-only role of the checks (local default: kappa_reader)."
    )
    warehouse_sink_url: str | None = Field(
        None, repr=False, description="URL of the role Flink's sinks write with (local default: kappa_sink)."
    )
    git_commit: str | None = Field(None, description="Recorded with every swap; default: git HEAD.")
    job_key: str | None = Field(
        None,
        repr=False,
        description="The key each Flink job role's password is derived from, by the orchestrator and "
        "by the JDBC sinks (KAPPA_JOB_KEY in the Flink processes' environment), so no password is in a "
        "job's SQL text; default: the local stack's (<home>/flink/job-key).",
    )
    data_quality_cron: str = Field("0 * * * *", description="When the scheduled data-quality checks run.")
    topic_partitions: int = Field(
        3, ge=1, le=10_000, description="Partitions of a source topic `kappa-orch topics --create` makes."
    )
    topic_retention: str | None = Field(
        None,
        description="Retention of a source topic `topics --create` makes (a duration like 30d, or "
        "forever), raised to what its readers need; default: the broker's (7d).",
    )
    dead_letter_retention: str = Field(
        "30d",
        description="Retention of the dead-letter topics a deploy creates (a duration, or forever); "
        "a spec's dead_letters.retention overrides it.",
    )
    deployment: str = Field(
        "default",
        pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$",
        description="This deployment's name, the first part of its Flink job names (e.g. prod, staging).",
    )
    dagster_url: str = Field(
        "http://127.0.0.1:3000", description="The Dagster UI's address (links to runs from the swap history)."
    )
    openlineage: str = Field(
        "file:openlineage/events.jsonl",
        description="Where OpenLineage events go: http://host:port[/path] (Marquez, DataHub), "
        "file:/path/events.jsonl (relative: under home), console, kafka://host:port/topic, or none.",
    )
    alerts: str = Field(
        "none",
        description="Where failing health checks, gates and scheduled checks are sent, and their "
        "resolve: comma-separated webhook=<url>, slack=<incoming webhook url>, "
        "pagerduty=<routing key>[@<events url>], or none.",
    )
    # the settings whose value came from an environment variable
    from_environment: frozenset[str] = Field(frozenset(), repr=False)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str],
        *,
        flags: Mapping[str, Any] | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> PlatformConfig:
        """Flags (None = not given) over KAPPA_* variables over `defaults` over the local stack's."""
        given = {k: v for k, v in (flags or {}).items() if v is not None}
        unknown = sorted(set(given) - set(VARIABLES))
        if unknown:
            raise SpecError(
                f"unknown platform setting(s): {', '.join(unknown)}", f"use {', '.join(VARIABLES)}"
            )
        from_env = {f: environ[v] for f, v in VARIABLES.items() if environ.get(v) and f not in given}
        return cls(**{**(defaults or {}), **from_env, **given}, from_environment=frozenset(from_env))

    @model_validator(mode="after")
    def _the_local_warehouse(self) -> PlatformConfig:
        if not self.warehouse_url:  # frozen: set once, here, from the local stack's files
            object.__setattr__(self, "warehouse_url", local_url(self.home))
        return self

    @field_validator("openlineage")
    @classmethod
    def _a_transport(cls, value: str) -> str:
        from kappa_orch.lineage.emit import transport_config

        transport_config(value, home=Path("."))
        return value

    @field_validator("alerts")
    @classmethod
    def _receivers(cls, value: str) -> str:
        from kappa_orch.resources.alerts import parse_receivers

        parse_receivers(value)
        return value

    @field_validator("topic_retention", "dead_letter_retention")
    @classmethod
    def _a_retention(cls, value: str | None) -> str | None:
        if value is not None and value != "forever":
            parse_duration(value)
        return value

    def topic_retention_ms(self) -> int | None:
        """`topic_retention` in ms (-1: forever; None: the broker's)."""
        return retention_ms(self.topic_retention)

    def job_key_value(self) -> str | None:
        """`job_key`, else the local stack's key file when there is one."""
        if self.job_key:
            return self.job_key
        path = self.home / JOB_KEY_FILE
        return path.read_text().strip() if path.is_file() else None

    def role_urls(self) -> dict[str, str]:
        """The reader's and the sinks' URLs: as configured; for the local stack's default
        warehouse, its kappa_reader and kappa_sink; else none (the orchestrator's URL serves)."""
        reader, sink = self.warehouse_reader_url, self.warehouse_sink_url
        if self.warehouse_url == local_url(self.home):
            reader = reader or local_url(self.home, "reader")
            sink = sink or local_url(self.home, "sink")
        return {k: v for k, v in (("reader_url", reader), ("sink_url", sink)) if v}

    def flink_tls(self) -> tuple[str | None, str | None]:
        """FlinkResource's tls_ca and tls_cert: as configured, else the local stack's files
        when they exist (None: plain or publicly trusted https, no client certificate)."""
        local = self.home / PASSWORDS_DIR
        ca = self.flink_tls_ca or _existing(local / FLINK_TLS_CA)
        cert = self.flink_tls_cert or _existing(local / FLINK_TLS_CERT)
        return (str(ca) if ca else None), (str(cert) if cert else None)

    def plan_dir(self) -> str | None:
        """FlinkResource's plan_dir: as configured (`none`: no plans), else the local
        stack's folder when it exists and the SQL Gateway runs on this machine."""
        if self.flink_plan_dir:
            return None if self.flink_plan_dir.lower() == "none" else self.flink_plan_dir
        local = self.home / PLANS_DIR
        on_this_machine = any(host in self.sql_gateway_url for host in ("//127.0.0.1:", "//localhost:"))
        return str(local.resolve()) if on_this_machine and local.is_dir() else None

    def commit(self) -> str | None:
        """The deployment's commit: `git_commit`, else git's HEAD of the specs folder."""
        return self.git_commit or git_head(self.specs)

    def resources(self, *, dagster: bool = False) -> dict[str, Any]:
        """The kafka, flink, warehouse, openlineage and alerts resources. With `dagster=True` a
        secret that came from an environment variable stays an `EnvVar`: Dagster reads it at
        run time and never shows it. Without, values are resolved (for use outside Dagster)."""
        from dagster import EnvVar

        from kappa_orch.engine.flink.resource import FlinkResource
        from kappa_orch.lineage.resource import OpenLineageResource
        from kappa_orch.resources.alerts import AlertResource
        from kappa_orch.resources.kafka import KafkaResource
        from kappa_orch.resources.warehouse import WarehouseResource

        def secret(name: str, value: str) -> Any:
            return EnvVar(VARIABLES[name]) if dagster and name in self.from_environment else value

        roles = {key: secret(f"warehouse_{key}", url) for key, url in self.role_urls().items()}
        if key := self.job_key_value():
            roles["job_key"] = secret("job_key", key)
        tls_ca, tls_cert = self.flink_tls()
        return {
            "kafka": KafkaResource(
                bootstrap_servers=self.kafka_bootstrap,
                dead_letter_retention_ms=retention_ms(self.dead_letter_retention),
            ),
            "flink": FlinkResource(
                deployment=self.deployment,
                rest_url=self.flink_rest_url,
                sql_gateway_url=self.sql_gateway_url,
                tls_ca=tls_ca,
                tls_cert=tls_cert,
                plan_dir=self.plan_dir(),
            ),
            "warehouse": WarehouseResource(url=secret("warehouse_url", self.warehouse_url), **roles),
            "openlineage": OpenLineageResource.of(
                transport=self.openlineage,
                deployment=self.deployment,
                bootstrap=self.kafka_bootstrap,
                warehouse_url=self.warehouse_url,
                home=self.home,
            ),
            "alerts": AlertResource(
                receivers=secret("alerts", self.alerts),
                timeout_s=ALERT_TIMEOUT_S,
                deployment=self.deployment,
                link=self.dagster_url,
            ),
        }

    def environment(self) -> dict[str, str]:
        """These settings as the KAPPA_* variables a child process reads (unset ones left out)."""
        values = self.model_dump(exclude={"from_environment"})
        return {VARIABLES[k]: str(v) for k, v in values.items() if v is not None}


def retention_ms(retention: str | None) -> int | None:
    """A retention (a duration, or forever) as Kafka's retention.ms (-1: forever; None: unset)."""
    if retention is None:
        return None
    return -1 if retention == "forever" else int(parse_duration(retention) * 1000)


def git_head(folder: Path) -> str | None:
    """git's HEAD commit of the repository holding `folder`, or None."""
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder if folder.is_dir() else None,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (proc.stdout.strip() or None) if proc.returncode == 0 else None


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None
