"""A lean install: the base package is what a Dagster code location needs; the local
stack, Kubernetes and the UI are extras, and a command that needs one says which."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

from kappa_orch.errors import INFRASTRUCTURE, KappaError, require

ROOT = Path(__file__).resolve().parents[2]
# the import names of what only an extra installs
EXTRA_ONLY = {"pyflink": "stack", "boto3": "stack", "botocore": "stack", "dagster_k8s": "k8s"}
EXTRA_ONLY |= {"kubernetes_validate": "k8s", "dagster_webserver": "ui"}


def test_the_base_install_leaves_the_stack_kubernetes_and_the_ui_to_extras() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {d.split("=")[0].split(">")[0].split("<")[0].strip().lower() for d in project["dependencies"]}
    assert not base & {"apache-flink", "boto3", "dagster-k8s", "kubernetes-validate", "dagster-webserver"}
    extras = project["optional-dependencies"]
    assert any(d.startswith("apache-flink") for d in extras["stack"])
    assert any(d.startswith("dagster-k8s") for d in extras["k8s"])
    assert any(d.startswith("dagster-webserver") for d in extras["ui"])
    assert "kappa-orch[stack,k8s,ui]" in extras["dev"]


def test_no_module_imports_an_extra_when_it_loads() -> None:
    # an extra's package is imported inside the function that needs it, after require()
    at_load = []
    for path in sorted((ROOT / "kappa_orch").rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            at_load += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in EXTRA_ONLY]
    assert at_load == []


def test_a_missing_extra_is_one_error_with_the_install_command() -> None:
    with pytest.raises(KappaError) as refused:
        require("kappa_no_such_package", "stack", "Flink's planner (kappa-orch validate)")
    error = refused.value
    assert error.problem == (
        "Flink's planner (kappa-orch validate) needs the Python package 'kappa_no_such_package', "
        "which is not installed"
    )
    assert error.fix is not None and "pip install 'kappa-orch[stack]'" in error.fix
    assert error.blame == INFRASTRUCTURE
    require("yaml", "stack", "anything")  # installed: nothing raised
