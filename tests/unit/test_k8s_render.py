"""Kubernetes packaging (issue 15, point 5): `kappa-orch k8s render` writes the Flink
session cluster, the SQL Gateway, Dagster's Helm values and Strimzi topics from the
platform's configuration, credentials only as Secret references; every manifest is
validated offline (Kubernetes' schemas, the operator's CRD from its API jar, dagster-k8s's
launcher schema); bad settings get one clear error and nothing is written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kappa_orch.errors import SpecError
from kappa_orch.k8s.render import render
from kappa_orch.k8s.settings import load_settings
from kappa_orch.k8s.validate import expected_problem, validate_render
from tests.k8s_example import JARS, PASSWORD, PIPELINES, PLATFORM, ROOT, SETTINGS


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "k8s.yaml").write_text(yaml.safe_dump(SETTINGS))
    return render(PLATFORM, load_settings(tmp_path / "k8s.yaml"), PIPELINES)


def _docs(files: dict[str, str], name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(files[name]) if d]


@pytest.mark.slow
def test_every_manifest_validates_offline_but_the_operator_version_the_served_crd_predates(
    files: dict[str, str],
) -> None:
    assert JARS.is_dir(), (
        "run `kappa-orch stack jars` (scripts/bootstrap.sh does): the operator's CRDs come from it"
    )
    findings = validate_render(files, jars_dir=JARS, namespace="kappa", server=False)
    problems = [f for f in findings if f.ok is False]
    # the one problem: Maven Central serves the operator's API up to 1.10.0, which predates Flink 2.x
    assert [expected_problem(f) for f in problems] == [True]
    assert "v2_2" in problems[0].message and "1.10.0" in problems[0].message
    layers = {(f.layer, f.ok) for f in findings}
    assert {("kubernetes", True), ("operator CRD", True), ("dagster-k8s", True), ("strimzi", True)} <= layers
    checked = {f.resource.split(" ", 1)[1].split("/")[0] for f in findings if f.ok}
    assert {
        "Deployment",
        "Service",
        "Pod",
        "FlinkDeployment",
        "runLauncher K8sRunLauncher",
        "KafkaTopic",
    } <= checked
    # the server dry-run is tests/integration/test_k8s_dry_run.py's (it starts a kube-apiserver)
    assert not [f for f in findings if f.layer == "server dry-run"]


@pytest.mark.slow
def test_the_validators_catch_a_broken_manifest(files: dict[str, str]) -> None:
    broken = dict(files)
    broken["flink-session.yaml"] = files["flink-session.yaml"].replace("replicas: 3", "replicas: three")
    broken["sql-gateway.yaml"] = files["sql-gateway.yaml"].replace(
        "containerPort: 8083", "containerPort: http"
    )
    bad = [
        f for f in validate_render(broken, jars_dir=JARS, namespace="kappa", server=False) if f.ok is False
    ]
    messages = " | ".join(f.message for f in bad if not expected_problem(f))
    assert "spec.taskManager.replicas: 'three' is not of type 'integer'" in messages
    assert "containerPort: 'http' is not of type 'integer'" in messages


def test_the_session_cluster_is_flink_2_with_checkpoints_on_object_storage_and_ha(
    files: dict[str, str],
) -> None:
    [session] = _docs(files, "flink-session.yaml")
    spec = session["spec"]
    assert session["kind"] == "FlinkDeployment" and "job" not in spec  # session mode
    assert spec["flinkVersion"] == "v2_2" and spec["taskManager"]["replicas"] == 3
    config = spec["flinkConfiguration"]
    assert config["execution.checkpointing.dir"].startswith("s3://")
    assert config["high-availability.type"] == "kubernetes"
    assert config["s3.endpoint"] == "http://minio.kappa.svc:9000"
    [gateway, service] = _docs(files, "sql-gateway.yaml")
    command = gateway["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "-Drest.address=kappa-prod-rest.kappa.svc" in command
    assert service["spec"]["ports"][0]["port"] == 8083


def test_the_cluster_and_the_gateway_checkpoint_and_restart_as_the_local_stack(
    files: dict[str, str], tmp_path: Path
) -> None:
    # found in review: the render set no checkpoint interval (and the SQL Gateway, whose
    # configuration a job is built with, no checkpoint storage): jobs on Kubernetes would
    # never have checkpointed, so a repair could not resume one
    from kappa_orch.stack.config import StackConfig
    from kappa_orch.stack.flink import FlinkService

    local = FlinkService(StackConfig(home=tmp_path)).settings()
    [session] = _docs(files, "flink-session.yaml")
    cluster = session["spec"]["flinkConfiguration"]
    [gateway, _service] = _docs(files, "sql-gateway.yaml")
    command = gateway["spec"]["template"]["spec"]["containers"][0]["command"]
    shared = [k for k in local if k.startswith(("execution.checkpointing.", "restart-strategy.", "web."))]
    assert "execution.checkpointing.interval" in shared and len(shared) >= 10
    for key in shared:
        if key.endswith(("checkpointing.dir", "savepoint-dir")):  # storage: the bucket, not a folder
            assert cluster[key].startswith("s3://kappa-flink/") and f"-D{key}={cluster[key]}" in command
            continue
        assert cluster[key] == str(local[key]), key
        assert f"-D{key}={local[key]}" in command, key
    assert "-Ds3.endpoint=http://minio.kappa.svc:9000" in command


def test_checkpoints_retained_must_span_two_observation_ticks(tmp_path: Path) -> None:
    (tmp_path / "k8s.yaml").write_text(yaml.safe_dump(SETTINGS))
    with pytest.raises(SpecError) as short:
        load_settings(
            tmp_path / "k8s.yaml", {"flink.checkpoint_interval_s": 10, "flink.checkpoints_retained": 3}
        )
    assert (
        "3 retained checkpoints x 10 s = 30 s, less than two observation ticks (60 s)" in short.value.problem
    )
    assert "retain at least 6" in short.value.problem
    slow = load_settings(
        tmp_path / "k8s.yaml", {"flink.checkpoint_interval_s": 10, "flink.checkpoints_retained": 6}
    )
    assert slow.flink.checkpoints_retained == 6


def test_credentials_are_secret_references_never_values(files: dict[str, str]) -> None:
    assert PASSWORD not in "".join(files.values())
    [values] = _docs(files, "dagster-values.yaml")
    [code] = values["dagster-user-deployments"]["deployments"]
    env = {e["name"]: e for e in code["env"]}
    assert env["KAPPA_WAREHOUSE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "kappa-warehouse",
        "key": "url",
    }
    assert "value" not in env["KAPPA_WAREHOUSE_URL"]
    # the same configuration the local stack's CLI reads
    assert env["KAPPA_KAFKA_BOOTSTRAP"]["value"] == PLATFORM.kafka_bootstrap
    assert env["KAPPA_DEPLOYMENT"]["value"] == "prod" and env["KAPPA_OPENLINEAGE"]["value"].startswith(
        "http://"
    )
    # the job key reaches the orchestrator and every Flink pod (the JDBC sinks derive their
    # role's password from it; none is in the SQL), by reference; the plugin is in the image
    job_key = {"secretKeyRef": {"name": "kappa-jobs", "key": "key"}}
    assert env["KAPPA_JOB_KEY"]["valueFrom"] == job_key
    [session] = _docs(files, "flink-session.yaml")
    [flink_env] = [c["env"] for c in session["spec"]["podTemplate"]["spec"]["containers"]]
    assert {"name": "KAPPA_JOB_KEY", "valueFrom": job_key} in flink_env
    assert "kappa-flink.jar" in files["Dockerfile.flink"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert code["dagsterApiGrpcArgs"] == ["--python-file", "/opt/kappa/definitions.py"]


def test_a_strimzi_topic_per_source_and_dead_letter_topic(files: dict[str, str]) -> None:
    topics = {d["spec"]["topicName"]: d for d in _docs(files, "kafka-topics.yaml")}
    sources = {s.topic for p in PIPELINES for s in p.spec.sources}
    letters = {p.spec.dead_letter_topic for p in PIPELINES}
    assert set(topics) == sources | letters
    for topic in topics.values():
        assert topic["spec"]["replicas"] == 3 and topic["spec"]["config"]["min.insync.replicas"] == 2
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "events"
    assert topics[next(iter(letters))]["spec"]["config"]["retention.ms"] == 30 * 86_400_000


def test_bad_settings_get_one_clear_error(tmp_path: Path) -> None:
    without = {k: v for k, v in SETTINGS.items() if k != "secrets"}
    (tmp_path / "k8s.yaml").write_text(yaml.safe_dump(without))
    with pytest.raises(SpecError) as missing:
        load_settings(tmp_path / "k8s.yaml")
    assert "secrets: Field required" in missing.value.problem and "Secrets are named" in missing.value.fix
    with pytest.raises(SpecError) as old:
        load_settings(tmp_path / "k8s.yaml", {"flink.version": "1.20.0", "secrets.warehouse_url.name": "pg"})
    assert "Flink 1.20.0 is not supported" in old.value.problem
    with pytest.raises(SpecError, match="does not exist"):
        load_settings(tmp_path / "missing.yaml")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KAPPA_SPECS": str(ROOT / "assets"),
        "KAPPA_HOME": str(ROOT / ".kappa"),
        "KAPPA_OPENLINEAGE": "none",
        # no kube-apiserver here: the server dry-run layer says so (tests/integration runs it)
        "KAPPA_KUBE_CACHE": str(cwd / "no-kube"),
    }
    cli = str(Path(sys.executable).parent / "kappa-orch")
    return subprocess.run([cli, "k8s", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_the_cli_renders_and_a_bad_setting_leaves_nothing_half_written(tmp_path: Path) -> None:
    (tmp_path / "k8s.yaml").write_text(yaml.safe_dump(SETTINGS))
    done = _cli("render", "--config", "k8s.yaml", "--out", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == [
        "Dockerfile.flink",
        "dagster-values.yaml",
        "flink-session.yaml",
        "kafka-topics.yaml",
        "sql-gateway.yaml",
    ]
    assert "skip [server dry-run] all: not run: no kube-apiserver and etcd in" in done.stdout
    assert "scripts/kube_apiserver.sh` builds them" in done.stdout
    before = {p.name: p.read_text() for p in (tmp_path / "out").iterdir()}
    refused = _cli(
        "render", "--config", "k8s.yaml", "--out", "out", "--set", "flink.version=1.18.1", cwd=tmp_path
    )
    assert refused.returncode != 0 and "Flink 1.18.1 is not supported" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert {p.name: p.read_text() for p in (tmp_path / "out").iterdir()} == before  # untouched
    again = _cli("validate", "out", "--config", "k8s.yaml", cwd=tmp_path)
    assert again.returncode == 0, again.stdout


def test_the_user_code_dockerfile_copies_what_exists() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for path in source.split():
            assert (ROOT / path).exists(), path
    assert "/opt/kappa/definitions.py" in text


@pytest.mark.slow
def test_flink_runs_unprivileged_behind_mutual_tls_as_on_the_local_stack(
    files: dict[str, str], tmp_path: Path
) -> None:
    # found: Flink's REST API and SQL Gateway took any request, and Flink ran as root
    [session] = _docs(files, "flink-session.yaml")
    config = session["spec"]["flinkConfiguration"]
    for scope in ("rest", "internal"):
        assert config[f"security.ssl.{scope}.enabled"] == "true"
        assert config[f"security.ssl.{scope}.keystore"] == "/opt/flink/tls/keystore.p12"
        assert config[f"security.ssl.{scope}.truststore"] == "/opt/flink/tls/truststore.p12"
    assert config["security.ssl.rest.authentication-enabled"] == "true"
    assert config["kubernetes.secrets"] == "kappa-flink-tls:/opt/flink/tls"
    never_root = {"runAsNonRoot": True, "runAsUser": 9999, "runAsGroup": 9999, "fsGroup": 9999}
    assert session["spec"]["podTemplate"]["spec"]["securityContext"] == never_root
    gateway = next(d for d in _docs(files, "sql-gateway.yaml") if d["kind"] == "Deployment")
    pod = gateway["spec"]["template"]["spec"]
    assert pod["securityContext"] == never_root
    assert pod["volumes"] == [
        {"name": "flink-tls", "secret": {"secretName": "kappa-flink-tls", "defaultMode": 0o440}}
    ]
    [container] = pod["containers"]
    assert "-Dsecurity.ssl.rest.authentication-enabled=true" in container["command"]
    assert container["readinessProbe"]["tcpSocket"] == {"port": 8083}  # an HTTP probe has no certificate
    # the user code (and its runs) reach both endpoints over https with the client certificate
    [values] = _docs(files, "dagster-values.yaml")
    [code] = values["dagster-user-deployments"]["deployments"]
    env = {e["name"]: e.get("value") for e in code["env"]}
    assert env["KAPPA_FLINK_REST_URL"].startswith("https://") and env["KAPPA_SQL_GATEWAY_URL"].startswith(
        "https://"
    )
    assert env["KAPPA_FLINK_TLS_CA"] == "/opt/kappa/tls/ca.pem"
    assert env["KAPPA_FLINK_TLS_CERT"] == "/opt/kappa/tls/client.pem"
    assert code["volumeMounts"] == [{"name": "flink-tls", "mountPath": "/opt/kappa/tls", "readOnly": True}]
    # `k8s certificate` makes the Secret's files for the services the render names
    from click.testing import CliRunner

    from kappa_orch.cli import main

    out = tmp_path / "tls"
    made = CliRunner().invoke(main, ["k8s", "certificate", "--out", str(out), "--set", "namespace=streaming"])
    assert made.exit_code == 0, made.output
    assert sorted(p.name for p in out.iterdir()) == ["ca.pem", "client.pem", "keystore.p12", "truststore.p12"]
    assert all(p.stat().st_mode & 0o077 == 0 for p in out.iterdir())
    assert "kappa-default-sql-gateway.streaming.svc" in made.output
    assert "kubectl -n streaming create secret generic kappa-flink-tls" in made.output
