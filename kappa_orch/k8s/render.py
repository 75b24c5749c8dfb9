"""Kubernetes manifests from the platform's configuration and the render settings (pure).

    flink-session.yaml   FlinkDeployment (Flink Kubernetes Operator): a session cluster,
                         Flink 2.x, checkpoints and savepoints on object storage,
                         Kubernetes HA
    sql-gateway.yaml     the SQL Gateway kappa_orch submits jobs through: Deployment + Service
    dagster-values.yaml  values for Dagster's Helm chart: the user code deployment running
                         build_kappa_definitions, the K8sRunLauncher (dagster-k8s)
    kafka-topics.yaml    a Strimzi KafkaTopic per source and dead-letter topic (when
                         topics.strimzi_cluster is set)
    Dockerfile.flink     the Flink image with the connectors the jobs use

Credentials are Secret references (`secretKeyRef`), never values: the warehouse URLs,
the checkpoint bucket's keys and the OpenLineage API key. Flink runs unprivileged behind
mutual TLS, with its certificate in a Secret (kappa_orch.k8s.tls)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from kappa_orch.config import PlatformConfig, retention_ms
from kappa_orch.engine.flink.policy import job_policy
from kappa_orch.k8s.settings import K8sSettings, SecretKey
from kappa_orch.k8s.tls import (
    CLIENT_MOUNT,
    FLINK_MOUNT,
    flink_tls_configuration,
    secret_mount,
    secret_volume,
    unprivileged,
)
from kappa_orch.spec.model import LoadedPipeline

GATEWAY_PORT = 8083
CODE_PORT = 3030


def session_name(platform: PlatformConfig) -> str:
    return f"kappa-{platform.deployment}".replace("_", "-")


def _secret_env(name: str, ref: SecretKey | None) -> list[dict[str, Any]]:
    if ref is None:
        return []
    return [{"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}]


def _s3_env(settings: K8sSettings) -> list[dict[str, Any]]:
    """The Flink pods' credentials: the bucket's keys and the job key the JDBC sinks derive
    their role's password from."""
    secrets = settings.secrets
    return (
        _secret_env("AWS_ACCESS_KEY_ID", secrets.s3_access_key)
        + _secret_env("AWS_SECRET_ACCESS_KEY", secrets.s3_secret_key)
        + _secret_env("KAPPA_JOB_KEY", secrets.job_key)
    )


def job_configuration(settings: K8sSettings) -> dict[str, str]:
    """What each job is built with: checkpoint storage, interval and retention, restart
    strategy; the same policy as the local stack the tests run on. A job takes these
    from the client that submits it, so the SQL Gateway gets them as well as the
    cluster (before, neither set a checkpoint interval: the jobs never checkpointed)."""
    flink = settings.flink
    policy = job_policy(
        checkpoint_interval_s=flink.checkpoint_interval_s, checkpoints_retained=flink.checkpoints_retained
    )
    config = {
        "execution.checkpointing.dir": flink.checkpoints,
        "execution.checkpointing.savepoint-dir": flink.savepoints,
        **{key: str(value) for key, value in policy.items()},
    }
    if flink.s3_endpoint:
        config |= {"s3.endpoint": flink.s3_endpoint, "s3.path.style.access": "true"}
    return config


def flink_configuration(platform: PlatformConfig, settings: K8sSettings) -> dict[str, str]:
    """The session cluster's Flink configuration (strings, as the operator wants them)."""
    flink = settings.flink
    return {
        "taskmanager.numberOfTaskSlots": str(flink.slots_per_taskmanager),
        "high-availability.type": "kubernetes",
        "high-availability.storageDir": flink.ha_storage,
        "kubernetes.operator.job.upgrade.last-state-fallback.enabled": "true",
        # the certificate's Secret in every Flink pod, and mutual TLS everywhere
        "kubernetes.secrets": f"{flink.tls_secret}:{FLINK_MOUNT}",
        **flink_tls_configuration(settings),
        **job_configuration(settings),
    }


def flink_deployment(platform: PlatformConfig, settings: K8sSettings) -> dict[str, Any]:
    """The FlinkDeployment of the session cluster (no `job`: session mode)."""
    flink = settings.flink
    env = [{"name": "ENABLE_BUILT_IN_PLUGINS", "value": f"flink-s3-fs-presto-{flink.version}.jar"}]
    env += _s3_env(settings)
    return {
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkDeployment",
        "metadata": {
            "name": session_name(platform),
            "namespace": settings.namespace,
            "labels": _labels(platform),
        },
        "spec": {
            "image": flink.image,
            "flinkVersion": flink.operator_version,
            "serviceAccount": flink.service_account,
            "flinkConfiguration": flink_configuration(platform, settings),
            "podTemplate": {
                "spec": {
                    "securityContext": unprivileged(),
                    "containers": [{"name": "flink-main-container", "env": env}],
                },
            },
            "jobManager": {
                "replicas": 1,
                "resource": {"memory": flink.jobmanager_memory, "cpu": flink.jobmanager_cpu},
            },
            "taskManager": {
                "replicas": flink.taskmanagers,
                "resource": {"memory": flink.taskmanager_memory, "cpu": flink.taskmanager_cpu},
            },
        },
    }


def _labels(platform: PlatformConfig, component: str | None = None) -> dict[str, str]:
    labels = {"app.kubernetes.io/part-of": "kappa-orch", "kappa-orch/deployment": platform.deployment}
    if component:
        labels["app.kubernetes.io/component"] = component
    return labels


def sql_gateway(platform: PlatformConfig, settings: K8sSettings) -> list[dict[str, Any]]:
    """The SQL Gateway (a Deployment in front of the session cluster's REST service) and its Service."""
    name = f"{session_name(platform)}-sql-gateway"
    labels = _labels(platform, "sql-gateway")
    rest = f"{session_name(platform)}-rest.{settings.namespace}.svc"
    command = [
        "/opt/flink/bin/sql-gateway.sh",
        "start-foreground",
        "-Dsql-gateway.endpoint.rest.address=0.0.0.0",
        f"-Dsql-gateway.endpoint.rest.port={GATEWAY_PORT}",
        f"-Drest.address={rest}",
        "-Drest.port=8081",
        "-Dexecution.target=remote",
        *(f"-D{key}={value}" for key, value in job_configuration(settings).items()),
        *(f"-D{key}={value}" for key, value in flink_tls_configuration(settings).items()),
    ]
    # mutual TLS: an HTTP probe has no certificate, so the probe is the port
    probe = {"tcpSocket": {"port": GATEWAY_PORT}, "periodSeconds": 10}
    container = {
        "name": "sql-gateway",
        "image": settings.flink.image,
        "command": command,
        "ports": [{"name": "rest", "containerPort": GATEWAY_PORT}],
        "env": _s3_env(settings),
        "readinessProbe": probe,
        "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}},
        "volumeMounts": [secret_mount(FLINK_MOUNT)],
    }
    pod = {"securityContext": unprivileged(), "containers": [container], "volumes": [secret_volume(settings)]}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": settings.namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": settings.namespace, "labels": labels},
        "spec": {
            "selector": labels,
            "ports": [{"name": "rest", "port": GATEWAY_PORT, "targetPort": GATEWAY_PORT}],
        },
    }
    return [deployment, service]


def user_code_env(platform: PlatformConfig, settings: K8sSettings) -> list[dict[str, Any]]:
    """The user code's environment: the platform's settings as KAPPA_* values, the
    credentials as Secret references."""
    gateway = f"https://{session_name(platform)}-sql-gateway.{settings.namespace}.svc:{GATEWAY_PORT}"
    values = {
        "KAPPA_SPECS": "/opt/kappa/assets",
        "KAPPA_HOME": "/tmp/kappa",
        "KAPPA_DEPLOYMENT": platform.deployment,
        "KAPPA_KAFKA_BOOTSTRAP": platform.kafka_bootstrap,
        "KAPPA_FLINK_REST_URL": f"https://{session_name(platform)}-rest.{settings.namespace}.svc:8081",
        "KAPPA_SQL_GATEWAY_URL": gateway,
        "KAPPA_FLINK_TLS_CA": f"{CLIENT_MOUNT}/ca.pem",
        "KAPPA_FLINK_TLS_CERT": f"{CLIENT_MOUNT}/client.pem",
        "KAPPA_DATA_QUALITY_CRON": platform.data_quality_cron,
        "KAPPA_DEAD_LETTER_RETENTION": platform.dead_letter_retention,
        "KAPPA_OPENLINEAGE": platform.openlineage,
        "KAPPA_DAGSTER_URL": platform.dagster_url,
    }
    env = [{"name": k, "value": v} for k, v in values.items()]
    secrets = settings.secrets
    env += _secret_env("KAPPA_WAREHOUSE_URL", secrets.warehouse_url)
    env += _secret_env("KAPPA_WAREHOUSE_READER_URL", secrets.warehouse_reader_url)
    env += _secret_env("KAPPA_WAREHOUSE_SINK_URL", secrets.warehouse_sink_url)
    env += _secret_env("OPENLINEAGE_API_KEY", secrets.openlineage_api_key)
    env += _secret_env("KAPPA_JOB_KEY", secrets.job_key)
    return env


def dagster_values(platform: PlatformConfig, settings: K8sSettings) -> dict[str, Any]:
    """Values for Dagster's Helm chart: one user code deployment, runs as Kubernetes Jobs."""
    repository, _, tag = settings.user_code_image.rpartition(":")
    deployment = {
        "name": f"{session_name(platform)}-code",
        "image": {
            "repository": repository or settings.user_code_image,
            "tag": tag or "latest",
            "pullPolicy": "IfNotPresent",
        },
        "dagsterApiGrpcArgs": ["--python-file", "/opt/kappa/definitions.py"],
        "port": CODE_PORT,
        "env": user_code_env(platform, settings),
        # the client's certificate for Flink's endpoints (runs inherit it)
        "volumes": [secret_volume(settings)],
        "volumeMounts": [secret_mount(CLIENT_MOUNT)],
        "includeConfigInLaunchedRuns": {"enabled": True},
    }
    return {
        "dagster-user-deployments": {"enabled": True, "deployments": [deployment]},
        "runLauncher": {
            "type": "K8sRunLauncher",
            "config": {"k8sRunLauncher": {"jobNamespace": settings.namespace}},
        },
        "dagsterDaemon": {"enabled": True},
    }


def kafka_topics(
    platform: PlatformConfig, settings: K8sSettings, pipelines: Sequence[LoadedPipeline]
) -> list[dict[str, Any]]:
    """A Strimzi KafkaTopic per source topic and dead-letter topic (none without a cluster)."""
    cluster = settings.topics.strimzi_cluster
    if cluster is None:
        return []
    topics: dict[str, tuple[int, int | None]] = {}
    for pipeline in pipelines:
        for source in pipeline.spec.sources:
            retention = retention_ms(source.retention) if source.retention else platform.topic_retention_ms()
            topics.setdefault(source.topic, (source.partitions or platform.topic_partitions, retention))
    for pipeline in pipelines:
        retention = retention_ms(pipeline.spec.dead_letters.retention or platform.dead_letter_retention)
        partitions = max(
            topics.get(s.topic, (platform.topic_partitions, None))[0] for s in pipeline.spec.sources
        )
        topics.setdefault(pipeline.spec.dead_letter_topic, (partitions, retention))
    return [_topic(platform, settings, cluster, (name, *shape)) for name, shape in sorted(topics.items())]


def _topic(
    platform: PlatformConfig, settings: K8sSettings, cluster: str, shape: tuple[str, int, int | None]
) -> dict[str, Any]:
    """One Strimzi KafkaTopic; `shape`: its name, partitions and retention (ms, None: the broker's)."""
    topic, partitions, retention = shape
    config: dict[str, Any] = {"min.insync.replicas": settings.topics.min_insync_replicas}
    if retention is not None:
        config["retention.ms"] = retention
    return {
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "KafkaTopic",
        "metadata": {
            "name": topic.replace("_", "-").replace(".", "-").lower()[:253],
            "namespace": settings.namespace,
            "labels": {"strimzi.io/cluster": cluster, **_labels(platform)},
        },
        "spec": {
            "topicName": topic,
            "partitions": partitions,
            "replicas": settings.topics.replicas,
            "config": config,
        },
    }


DOCKERFILE_FLINK = """\
# The Flink image of the session cluster and the SQL Gateway: the official image plus the
# connectors kappa_orch's jobs use (the same jars `kappa-orch stack jars` resolves).
# Build from a folder holding them:
#   kappa-orch stack jars && cp .kappa/jars/flink/*.jar .kappa/jars/kappa-flink/*.jar jars/
# kappa-flink.jar derives a job role's password from KAPPA_JOB_KEY (beside the driver) and parses
# each event (KAPPA_PARSE, KAPPA_EVENT_MILLIS).
FROM flink:{version}-java17
COPY jars/flink-sql-connector-kafka-*.jar jars/flink-connector-jdbc-*.jar /opt/flink/lib/
COPY jars/postgresql-*.jar jars/kappa-flink.jar /opt/flink/lib/
COPY jars/flink-sql-gateway-*.jar /opt/flink/opt/
"""


def render(
    platform: PlatformConfig, settings: K8sSettings, pipelines: Sequence[LoadedPipeline]
) -> dict[str, str]:
    """File name -> content."""

    def documents(*docs: dict[str, Any]) -> str:
        header = f"# rendered by kappa-orch k8s render for deployment {platform.deployment!r}\n"
        return header + yaml.safe_dump_all(list(docs), sort_keys=False)

    files = {
        "flink-session.yaml": documents(flink_deployment(platform, settings)),
        "sql-gateway.yaml": documents(*sql_gateway(platform, settings)),
        "dagster-values.yaml": documents(dagster_values(platform, settings)),
        "Dockerfile.flink": DOCKERFILE_FLINK.format(version=settings.flink.version),
    }
    topics = kafka_topics(platform, settings, pipelines)
    if topics:
        files["kafka-topics.yaml"] = documents(*topics)
    return files
