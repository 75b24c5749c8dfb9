"""Offline validation of a render, layer by layer, each saying what it checked:

1. core kinds (Deployment, Service, and the user code's container as a Pod) against
   Kubernetes' schemas (kubernetes-validate, strict: unknown fields are errors);
2. the FlinkDeployment against the operator's CRD (OpenAPI v3 schema), read from the
   operator's API jar on Maven Central (`kappa-orch stack jars` fetches it). Maven
   Central here serves that jar up to 1.10.0, whose `flinkVersion` enum stops at v1_20:
   a Flink 2.x session (`v2_2`, operator >= 1.13) fails that one check, reported as
   such; every other field is held to the 1.10.0 schema;
3. the K8sRunLauncher configuration of the Dagster values against dagster-k8s's own
   config schema (as the Helm chart hands it to the launcher);
4. KafkaTopics structurally (Strimzi publishes its CRDs outside Maven Central);
5. a server-side dry run against a real kube-apiserver and etcd (kappa_orch.k8s.dry_run),
   when scripts/kube_apiserver.sh has built them; else said as such.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kappa_orch.k8s.settings import OPERATOR_VERSION

KUBERNETES_VERSION = "1.33"
OPERATOR_API = "flink-kubernetes-operator-api-*.jar"


@dataclass(frozen=True)
class Finding:
    layer: str
    resource: str
    message: str
    ok: bool | None  # passed, a problem, or None: the layer did not run (said why)

    def __str__(self) -> str:
        mark = {True: "ok  ", False: "BAD ", None: "skip"}[self.ok]
        return f"{mark} [{self.layer}] {self.resource}: {self.message}"


def _docs(files: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, doc)
        for name, text in files.items()
        if name.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc and "kind" in doc
    ]


def core_kinds(files: dict[str, str]) -> list[Finding]:
    import kubernetes_validate as kv  # type: ignore[import-untyped]

    found = []
    pods = [("dagster-values.yaml", _code_pod(doc)) for name, doc in _values(files)]
    for name, doc in [*[(n, d) for n, d in _docs(files) if "." not in d["apiVersion"].split("/")[0]], *pods]:
        label = f"{name} {doc['kind']}/{doc['metadata']['name']}"
        try:
            kv.validate(doc, KUBERNETES_VERSION, strict=True)
            found.append(Finding("kubernetes", label, f"valid against Kubernetes {KUBERNETES_VERSION}", True))
        except kv.ValidationError as exc:
            found.append(
                Finding("kubernetes", label, f"{'.'.join(map(str, exc.path))}: {exc.message}", False)
            )
    return found


def _values(files: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    text = files.get("dagster-values.yaml")
    return [("dagster-values.yaml", yaml.safe_load(text))] if text else []


def _code_pod(values: dict[str, Any]) -> dict[str, Any]:
    """The user code deployment's container as the Pod the chart makes of it."""
    [code] = values["dagster-user-deployments"]["deployments"]
    image = code["image"]
    container = {
        "name": code["name"],
        "image": f"{image['repository']}:{image['tag']}",
        "args": [
            "dagster",
            "api",
            "grpc",
            "-h",
            "0.0.0.0",
            "-p",
            str(code["port"]),
            *code["dagsterApiGrpcArgs"],
        ],
        "env": code["env"],
        "ports": [{"containerPort": code["port"]}],
        "volumeMounts": code.get("volumeMounts", []),
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": code["name"]},
        "spec": {"containers": [container], "volumes": code.get("volumes", [])},
    }


def operator_crd_document(jars_dir: Path) -> tuple[str, dict[str, Any]] | None:
    """(operator version, the FlinkDeployment CRD) from the operator's API jar, or None."""
    jars = sorted(jars_dir.glob(OPERATOR_API))
    if not jars:
        return None
    version = jars[-1].name.removeprefix("flink-kubernetes-operator-api-").removesuffix(".jar")
    with zipfile.ZipFile(jars[-1]) as jar:
        crd = yaml.safe_load(jar.read("META-INF/fabric8/flinkdeployments.flink.apache.org-v1.yml"))
    return version, crd


def operator_crd(jars_dir: Path) -> tuple[str, dict[str, Any]] | None:
    """(operator version, the FlinkDeployment v1beta1 OpenAPI schema) from the API jar, or None."""
    found = operator_crd_document(jars_dir)
    if found is None:
        return None
    version, crd = found
    [served] = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    return version, served["schema"]["openAPIV3Schema"]


def flink_deployments(files: dict[str, str], jars_dir: Path) -> list[Finding]:
    from jsonschema import Draft7Validator  # type: ignore[import-untyped]

    crd = operator_crd(jars_dir)
    deployments = [(n, d) for n, d in _docs(files) if d["kind"] == "FlinkDeployment"]
    if crd is None:
        return [
            Finding(
                "operator CRD",
                n,
                f"not run: no {OPERATOR_API} in {jars_dir} (run `kappa-orch stack jars`)",
                None,
            )
            for n, _ in deployments
        ]
    version, schema = crd
    found = []
    for name, doc in deployments:
        label = f"{name} FlinkDeployment/{doc['metadata']['name']}"
        errors = list(Draft7Validator(schema).iter_errors(doc))
        for error in errors:
            path = ".".join(map(str, error.path))
            if path == "spec.flinkVersion":
                message = (
                    f"flinkVersion {error.instance!r} is not in operator {version}'s CRD (the newest API "
                    f"jar on Maven Central here; its enum stops at {error.validator_value[-1]}): Flink 2.x "
                    f"needs a newer operator; install {OPERATOR_VERSION}, whose FlinkDeployment knows it"
                )
                found.append(Finding("operator CRD", label, message, False))
            else:
                found.append(Finding("operator CRD", label, f"{path}: {error.message}", False))
        if not errors:
            found.append(Finding("operator CRD", label, f"valid against operator {version}'s CRD", True))
        elif all(".".join(map(str, e.path)) == "spec.flinkVersion" for e in errors):
            found.append(
                Finding(
                    "operator CRD", label, f"every other field valid against operator {version}'s CRD", True
                )
            )
    return found


def run_launcher(files: dict[str, str], namespace: str) -> list[Finding]:
    """The launcher config the chart builds from the values, processed by dagster-k8s."""
    from dagster._config import process_config
    from dagster_k8s import K8sRunLauncher

    found = []
    for name, values in _values(files):
        launcher = values["runLauncher"]
        given = launcher["config"]["k8sRunLauncher"]
        config = {
            "instance_config_map": "dagster-instance",
            "dagster_home": "/opt/dagster/dagster_home",
            "postgres_password_secret": "dagster-postgresql-secret",
            "job_namespace": given.get("jobNamespace", namespace),
        }
        result = process_config(K8sRunLauncher.config_type(), config)  # type: ignore[no-untyped-call]
        label = f"{name} runLauncher {launcher['type']}"
        if launcher["type"] != "K8sRunLauncher":
            found.append(Finding("dagster-k8s", label, "the run launcher is not K8sRunLauncher", False))
        elif result.success:
            found.append(Finding("dagster-k8s", label, "valid K8sRunLauncher configuration", True))
        else:
            found.append(
                Finding("dagster-k8s", label, "; ".join(e.message for e in result.errors or []), False)
            )
    return found


def kafka_topics(files: dict[str, str]) -> list[Finding]:
    found = []
    for name, doc in _docs(files):
        if doc["kind"] != "KafkaTopic":
            continue
        spec, label = doc.get("spec") or {}, f"{name} KafkaTopic/{doc['metadata']['name']}"
        problems = [
            p
            for p, bad in (
                (
                    "apiVersion must be kafka.strimzi.io/v1beta2",
                    doc["apiVersion"] != "kafka.strimzi.io/v1beta2",
                ),
                (
                    "metadata.labels needs strimzi.io/cluster",
                    "strimzi.io/cluster" not in doc["metadata"].get("labels", {}),
                ),
                (
                    "spec.partitions must be a positive integer",
                    not isinstance(spec.get("partitions"), int) or spec["partitions"] < 1,
                ),
                (
                    "spec.replicas must be a positive integer",
                    not isinstance(spec.get("replicas"), int) or spec["replicas"] < 1,
                ),
                ("spec.topicName must be a string", not isinstance(spec.get("topicName"), str)),
            )
            if bad
        ]
        message = (
            "; ".join(problems)
            or "structurally valid (Strimzi's CRD is not on Maven Central: not schema-checked)"
        )
        found.append(Finding("strimzi", label, message, not problems))
    return found


def validate_render(
    files: dict[str, str], *, jars_dir: Path, namespace: str, server: bool = True
) -> list[Finding]:
    """Every layer's findings; the server-side dry run (unless `server` is False) runs when
    a kube-apiserver is built (scripts/kube_apiserver.sh), else it says so."""
    from kappa_orch.k8s.dry_run import server_findings

    crd = operator_crd_document(jars_dir)
    objects = [*_docs(files), *[("dagster-values.yaml", _code_pod(doc)) for _, doc in _values(files)]]
    return [
        *core_kinds(files),
        *flink_deployments(files, jars_dir),
        *run_launcher(files, namespace),
        *kafka_topics(files),
        *(server_findings(objects, crd[1] if crd else None, namespace) if server else []),
    ]


def expected_problem(finding: Finding) -> bool:
    """The one problem a Flink 2.x render has against the newest CRD served here (as the
    offline schema check and the kube-apiserver each word it)."""
    if finding.layer == "operator CRD":
        return "is not in operator" in finding.message
    # the server's one-error form ("is invalid: [a, b]" lists several)
    single = 'is invalid: spec.flinkVersion: Unsupported value: "v2_'
    return finding.layer == "server dry-run" and single in finding.message
