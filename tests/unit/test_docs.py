"""The docs stay true: the spec reference is the model's, links resolve, the README's
tour spec is a valid spec (its Python snippets run in tests/integration/test_docs.py)."""

from __future__ import annotations

import re
from pathlib import Path

from kappa_orch.spec.load import load_pipelines
from kappa_orch.spec.reference import render
from tests.docs_blocks import DOCS, ROOT, blocks


def test_the_spec_reference_is_generated_from_the_model() -> None:
    stale = "docs/spec-reference.md is stale: python -m kappa_orch.spec.reference > docs/spec-reference.md"
    assert (ROOT / "docs" / "spec-reference.md").read_text() == render(), stale


def test_every_relative_link_resolves() -> None:
    broken = []
    for path in DOCS:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", path.read_text()):
            if "://" not in target and not (path.parent / target).exists():
                broken.append(f"{path.name}: {target}")
    assert broken == []


def test_the_readme_opens_with_the_two_commands() -> None:
    first = blocks(ROOT / "README.md", "bash")[0]
    assert first.splitlines()[0].startswith("bash scripts/demo.sh")
    assert first.splitlines()[1].startswith("bash scripts/test.sh")


def test_the_tour_spec_is_a_valid_spec(tmp_path: Path) -> None:
    spec = next(b for b in blocks(ROOT / "README.md", "yaml") if b.startswith("name: daily_spend"))
    [sql] = blocks(ROOT / "README.md", "sql")
    (tmp_path / "daily_spend.yaml").write_text(spec)
    (tmp_path / "daily_spend.sql").write_text(sql)
    [pipeline] = load_pipelines(tmp_path)
    assert pipeline.spec.target.alias == "analytics.daily_spend"


def test_every_python_snippet_is_found() -> None:
    # the integration test runs these; an empty list would make it prove nothing
    snippets = [s for path in DOCS for s in blocks(path, "python")]
    assert len(snippets) >= 5
