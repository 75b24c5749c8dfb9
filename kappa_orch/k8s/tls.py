"""The Kubernetes render's side of an engine that is no open door (pure): the Flink pods
and the SQL Gateway run as the Flink image's unprivileged user, and Flink's REST API, the
SQL Gateway and the internal connections take only clients presenting the deployment's
certificate (mutual TLS), as on the local stack (kappa_orch.stack.flink_security).

The certificate lives in one Secret (`flink.tls_secret`), made by `kappa-orch k8s
certificate` and created with kubectl: keystore.p12 and truststore.p12 for Flink's
processes (mounted through the operator's `kubernetes.secrets`), ca.pem and client.pem
for kappa_orch's clients in the user code and its runs."""

from __future__ import annotations

from typing import Any

from kappa_orch.k8s.settings import K8sSettings

# where the Secret is mounted: in the Flink pods and the SQL Gateway, in the user code
FLINK_MOUNT = "/opt/flink/tls"
CLIENT_MOUNT = "/opt/kappa/tls"
# the official Flink image's user and group (never root)
FLINK_UID = 9999
SECRET_FILES = ("keystore.p12", "truststore.p12", "ca.pem", "client.pem")


def flink_tls_configuration(settings: K8sSettings) -> dict[str, str]:
    """Flink's settings for mutual TLS on REST (JobManager and SQL Gateway) and internally."""
    password = settings.flink.tls_store_password
    stores = {
        "keystore": f"{FLINK_MOUNT}/keystore.p12",
        "keystore-password": password,
        "key-password": password,
        "truststore": f"{FLINK_MOUNT}/truststore.p12",
        "truststore-password": password,
    }
    config = {
        "security.ssl.rest.enabled": "true",
        "security.ssl.rest.authentication-enabled": "true",
        "security.ssl.internal.enabled": "true",
    }
    for scope in ("rest", "internal"):
        config |= {f"security.ssl.{scope}.{key}": value for key, value in stores.items()}
    return config


def unprivileged() -> dict[str, Any]:
    """A pod's securityContext: never root, the Flink image's user."""
    return {"runAsNonRoot": True, "runAsUser": FLINK_UID, "runAsGroup": FLINK_UID, "fsGroup": FLINK_UID}


def secret_volume(settings: K8sSettings) -> dict[str, Any]:
    return {"name": "flink-tls", "secret": {"secretName": settings.flink.tls_secret, "defaultMode": 0o440}}


def secret_mount(path: str) -> dict[str, Any]:
    return {"name": "flink-tls", "mountPath": path, "readOnly": True}


def certificate_names(session: str, namespace: str) -> list[str]:
    """The DNS names the certificate must hold: the services clients reach (the JobManager's
    REST service, the SQL Gateway's), short and qualified. Internal connections do not
    verify host names (Flink's own rule), so pod addresses need no entry."""
    names = []
    for service in (f"{session}-rest", f"{session}-sql-gateway"):
        names += [service, f"{service}.{namespace}", f"{service}.{namespace}.svc"]
        names.append(f"{service}.{namespace}.svc.cluster.local")
    return [f"dns:{name}" for name in names]
