"""The server-side dry-run layer of `kappa-orch k8s validate` (issue 15, point 5): the
rendered manifests are created with dryRun=All against a real kube-apiserver and etcd,
built from the Go module proxy by scripts/kube_apiserver.sh (scripts/test.sh builds them
where Go is installed) and started by the validation itself. The operator's CRD (from
its API jar on Maven Central) is installed first, so the FlinkDeployment is held to the
served schema: operator 1.10.0's, which predates Flink 2.x (the one expected problem)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from kappa_orch.k8s.dry_run import BUILD, binaries, kube_bin
from kappa_orch.k8s.render import render
from kappa_orch.k8s.settings import load_settings
from kappa_orch.k8s.validate import expected_problem, validate_render
from tests.k8s_example import JARS, PIPELINES, PLATFORM, SETTINGS

pytestmark = pytest.mark.integration


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "k8s.yaml").write_text(yaml.safe_dump(SETTINGS))
    return render(PLATFORM, load_settings(tmp_path / "k8s.yaml"), PIPELINES)


def test_a_real_kube_apiserver_accepts_the_render_and_rejects_a_broken_manifest(
    files: dict[str, str],
) -> None:
    if binaries() is None:
        # where Go is missing the layer must say so and how to build it, never pass silently
        assert shutil.which("go") is None, f"Go is installed but {kube_bin()} is empty: run {BUILD}"
        [skipped] = [
            f for f in validate_render(files, jars_dir=JARS, namespace="kappa") if f.layer == "server dry-run"
        ]
        assert skipped.ok is None and BUILD in skipped.message
        return
    findings = [
        f for f in validate_render(files, jars_dir=JARS, namespace="kappa") if f.layer == "server dry-run"
    ]
    accepted = {f.resource for f in findings if f.ok}
    assert {
        "sql-gateway.yaml Deployment/kappa-prod-sql-gateway",
        "sql-gateway.yaml Service/kappa-prod-sql-gateway",
        "dagster-values.yaml Pod/kappa-prod-code",
    } <= accepted
    [flink] = [f for f in findings if f.resource.startswith("flink-session.yaml")]
    # the served CRD (operator 1.10.0) knows no Flink 2.x: the server says so itself
    assert flink.ok is False and expected_problem(flink) and '"v2_2"' in flink.message
    topics = [f for f in findings if "KafkaTopic" in f.resource]
    assert topics and all(f.ok is None and "no CRD" in f.message for f in topics)
    assert any(f.resource == "all" and "started and stopped" in f.message for f in findings)

    broken = dict(files)
    broken["sql-gateway.yaml"] = files["sql-gateway.yaml"].replace(
        "containerPort: 8083", "containerPort: 8083\n          hostPortt: 1"
    )
    broken["flink-session.yaml"] = files["flink-session.yaml"].replace("replicas: 3", "replicas: -3")
    bad = [
        f
        for f in validate_render(broken, jars_dir=JARS, namespace="kappa")
        if f.layer == "server dry-run" and f.ok is False and not expected_problem(f)
    ]
    messages = " | ".join(f.message for f in bad)
    assert 'unknown field "spec.template.spec.containers[0].ports[0].hostPortt"' in messages, messages
    # a second error beside the expected one is not hidden by it
    assert "spec.taskManager.replicas" in messages and "-3" in messages
