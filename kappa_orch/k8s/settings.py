"""What a Kubernetes render needs beyond the platform's configuration: images, sizes,
object storage and the names of the Secrets that hold credentials (never the
credentials). Read from a YAML file (`kappa-orch k8s render --config k8s.yaml`);
every field has a default but the Secrets, which must be named."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kappa_orch.engine.flink.policy import (
    CHECKPOINT_INTERVAL_S,
    CHECKPOINTS_RETAINED,
    OBSERVE_INTERVAL_S,
    retention_problem,
)
from kappa_orch.errors import SpecError

# what kappa_orch's jobs are built and tested with (the local stack's pyflink)
FLINK_VERSION = "2.2.1"
# the Flink Kubernetes Operator release the render targets (its FlinkDeployment knows
# flinkVersion v2_2); Maven Central here serves its API jar (the CRDs) only up to 1.10.0
OPERATOR_VERSION = "1.15.0"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretKey(_Strict):
    """One key of a Kubernetes Secret."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", description="The Secret's name.")
    key: str = Field(pattern=r"^[-._a-zA-Z0-9]+$", description="The key in it.")


class Secrets(_Strict):
    """Where the credentials are: a Secret key each, created by you (not rendered)."""

    warehouse_url: SecretKey = Field(
        description="SQLAlchemy URL of the orchestrator's role (KAPPA_WAREHOUSE_URL)."
    )
    warehouse_reader_url: SecretKey | None = Field(None, description="URL of the checks' read-only role.")
    warehouse_sink_url: SecretKey | None = Field(
        None, description="URL of the role Flink's sinks write with."
    )
    s3_access_key: SecretKey | None = Field(None, description="Access key of the checkpoint bucket.")
    s3_secret_key: SecretKey | None = Field(None, description="Secret key of the checkpoint bucket.")
    openlineage_api_key: SecretKey | None = Field(None, description="API key of the OpenLineage consumer.")
    job_key: SecretKey | None = Field(
        None,
        description="The key job roles' passwords are derived from (KAPPA_JOB_KEY), given to the user "
        "code and the Flink pods: no password is then in a job's SQL text.",
    )


class FlinkSettings(_Strict):
    version: str = Field(FLINK_VERSION, description="Flink release of the session cluster (2.x).")
    image: str = Field(
        "kappa-orch-flink:2.2.1",
        description="Flink image with the Kafka and JDBC connectors (Dockerfile.flink).",
    )
    taskmanagers: int = Field(2, ge=1, le=1000)
    slots_per_taskmanager: int = Field(4, ge=1, le=128)
    jobmanager_memory: str = Field("2048m")
    taskmanager_memory: str = Field("4096m")
    jobmanager_cpu: float = Field(1.0, gt=0)
    taskmanager_cpu: float = Field(2.0, gt=0)
    checkpoints: str = Field("s3://kappa-flink/checkpoints", description="Checkpoint storage URI.")
    savepoints: str = Field("s3://kappa-flink/savepoints", description="Savepoint storage URI.")
    ha_storage: str = Field("s3://kappa-flink/ha", description="Kubernetes HA metadata storage URI.")
    s3_endpoint: str | None = Field(None, description="S3-compatible endpoint (MinIO, ...); default: AWS.")
    service_account: str = Field("flink", description="Service account the operator's Flink pods run as.")
    tls_secret: str = Field(
        "kappa-flink-tls",
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="The Secret with the cluster's certificate (keystore.p12, truststore.p12, ca.pem, "
        "client.pem; `kappa-orch k8s certificate` makes them): Flink's REST API, the SQL Gateway and "
        "the internal connections take only clients that present it (mutual TLS).",
    )
    tls_store_password: str = Field(
        "kappa-orch-flink",
        min_length=6,
        description="The password of the keystore and truststore in that Secret. Flink reads it from its "
        "configuration (the FlinkDeployment), as in the Flink operator's TLS example; it guards the "
        "files, not the cluster: access is holding the Secret's key.",
    )
    checkpoint_interval_s: int = Field(CHECKPOINT_INTERVAL_S, ge=1, description="How often jobs checkpoint.")
    checkpoints_retained: int = Field(
        CHECKPOINTS_RETAINED, ge=1, description="Completed checkpoints Flink keeps per job."
    )
    observe_interval_s: int = Field(
        OBSERVE_INTERVAL_S,
        ge=1,
        description="The observation sensor's interval in the user code (automation observe_interval_s); "
        "the retained checkpoints must span two of its ticks.",
    )

    @field_validator("version")
    @classmethod
    def _flink_2(cls, value: str) -> str:
        if not value.startswith("2."):
            raise ValueError(
                f"Flink {value} is not supported: kappa_orch's jobs need Flink 2.x "
                f"(tested with {FLINK_VERSION})"
            )
        return value

    @model_validator(mode="after")
    def _retained_span_two_ticks(self) -> FlinkSettings:
        problem = retention_problem(
            checkpoint_interval_s=self.checkpoint_interval_s,
            checkpoints_retained=self.checkpoints_retained,
            observe_interval_s=self.observe_interval_s,
        )
        if problem:
            raise ValueError(problem)
        return self

    @property
    def operator_version(self) -> str:
        """The FlinkDeployment's flinkVersion value (v2_2 for 2.2.x)."""
        major, minor = self.version.split(".")[:2]
        return f"v{major}_{minor}"


class TopicSettings(_Strict):
    strimzi_cluster: str | None = Field(
        None, description="Render a Strimzi KafkaTopic per topic for this cluster."
    )
    replicas: int = Field(3, ge=1)
    min_insync_replicas: int = Field(2, ge=1)


class ClusterSettings(BaseModel):
    """The part of the settings the Flink cluster's certificate needs (where, which
    cluster); the rest of a render's settings file is not its business."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    namespace: str = Field("kappa", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    flink: FlinkSettings = Field(default_factory=FlinkSettings)


class K8sSettings(ClusterSettings):
    """A render's settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_code_image: str = Field("kappa-orch-user-code:0.1.0", description="The image Dockerfile builds.")
    topics: TopicSettings = Field(default_factory=TopicSettings)
    secrets: Secrets


Settings = TypeVar("Settings", bound=ClusterSettings)


def load_settings(
    path: Path | None,
    overrides: dict[str, Any] | None = None,
    *,
    model: type[Settings] = K8sSettings,  # type: ignore[assignment]
) -> Settings:
    """The settings in `path` (YAML) with `overrides` (dotted keys) applied, as `model`; a
    clear error naming the field and the fix when they do not hold."""
    data: dict[str, Any] = {}
    if path is not None:
        if not path.is_file():
            raise SpecError(f"{path} does not exist", "write the render settings there (docs/kubernetes.md)")
        data = yaml.safe_load(path.read_text()) or {}
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise SpecError(
            f"the Kubernetes render settings{f' in {path}' if path else ''} do not hold: {problems}",
            "fix them (every field: docs/kubernetes.md#render-settings); Secrets are named, never inlined",
        ) from None
