"""The tree keeps its layering: a package imports only from packages below it.

The flow reads bottom to top: a spec is loaded (spec), run by an engine (engine) over
Kafka and the warehouse (resources), told to OpenLineage (lineage), configured in one
place (config), recorded (registry), decided (plan), carried out (lifecycle), and shown
through Dagster, the local stack, Kubernetes and the CLI. Function-local imports count.
"""

from __future__ import annotations

import ast
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[2] / "kappa_orch"

# a package's rank: it may import from lower ranks and from itself, never from its
# own rank's siblings or from above
RANKS = {
    "errors": 0,
    "progress": 0,
    "spec": 1,
    "engine": 2,
    "resources": 2,
    "lineage": 2,
    "config": 3,
    "registry": 4,
    "plan": 5,
    "lifecycle": 6,
    "dagster": 7,
    "stack": 7,
    "k8s": 7,
    "cli": 8,
    "__init__": 9,
}


def _package(parts: tuple[str, ...]) -> str:
    return parts[0].removesuffix(".py")


def imports_of(path: Path) -> set[str]:
    """The kappa_orch packages (first level) a module imports from."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "kappa_orch":
            parts = node.module.split(".")[1:]
            found |= {parts[0]} if parts else {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("kappa_orch.")}
    return found


def test_every_package_has_a_rank_and_says_what_it_owns() -> None:
    packages = {
        _package(p.relative_to(LIBRARY).parts)
        for p in LIBRARY.glob("*")
        if p.suffix == ".py" or (p / "__init__.py").exists()
    }
    assert packages == set(RANKS)
    for init in LIBRARY.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "May import" in doc, f"{init.relative_to(LIBRARY.parent)} does not say what it may import"


def test_no_package_imports_from_above_or_beside_it() -> None:
    wrong = []
    for path in sorted(LIBRARY.rglob("*.py")):
        source = _package(path.relative_to(LIBRARY).parts)
        for target in imports_of(path) - {source}:
            if RANKS.get(target, 99) >= RANKS[source]:
                wrong.append(f"{path.relative_to(LIBRARY.parent)} imports kappa_orch.{target}")
    assert wrong == []


def test_the_rule_sees_a_wrong_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from kappa_orch.lifecycle import deploy\n")
    assert imports_of(module) == {"lifecycle"}
    module.write_text("from kappa_orch import registry, errors\n")
    assert imports_of(module) == {"registry", "errors"}


# the core works with the engine through its protocol only: it builds, submits and asks
# about jobs in engine terms (StreamEngine, JobDefinition, JobTarget), never Flink's
# (config builds the resources a deployment runs with, FlinkResource among them)
CORE = ("spec", "registry", "plan", "lifecycle", "lineage", "resources")


def test_the_core_imports_no_flink_names() -> None:
    wrong = []
    for package in CORE:
        for path in sorted((LIBRARY / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                module = getattr(node, "module", None) or ""
                names = [a.name for a in getattr(node, "names", [])] if isinstance(node, ast.Import) else []
                if module.startswith("kappa_orch.engine.flink") or any(
                    n.startswith("kappa_orch.engine.flink") for n in names
                ):
                    wrong.append(f"{path.relative_to(LIBRARY.parent)}:{node.lineno}")  # type: ignore[attr-defined]
    assert wrong == []
