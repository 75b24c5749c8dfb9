"""Every Python snippet in README.md and docs/ runs, as written, in a folder holding the
reference specs as `specs/`, against the real stack; so do the docs' read-only CLI lines."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kappa_orch.stack.config import StackConfig
from tests.docs_blocks import DOCS, ROOT, blocks

pytestmark = pytest.mark.integration
SNIPPETS = [(path.name, i, code) for path in DOCS for i, code in enumerate(blocks(path, "python"))]
READ_ONLY = ("validate", "plan", "status", "stack status", "stack env")


def _folder(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "assets", tmp_path / "specs", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return tmp_path


def _env(stack: StackConfig, folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAPPA_")}
    return {**env, **stack.platform(specs=folder / "specs").environment()}


@pytest.mark.parametrize(("doc", "index", "code"), SNIPPETS, ids=[f"{d}-{i}" for d, i, _ in SNIPPETS])
def test_the_python_snippet_runs(stack: StackConfig, tmp_path: Path, doc: str, index: int, code: str) -> None:
    folder = _folder(tmp_path)
    (folder / "snippet.py").write_text(code)
    done = subprocess.run(
        [sys.executable, "snippet.py"],
        cwd=folder,
        env=_env(stack, folder),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{doc} snippet {index}:\n{code}\n{done.stdout}{done.stderr}"


def _cli_lines() -> list[str]:
    lines = []
    for path in DOCS:
        for block in blocks(path, "bash"):
            for line in block.splitlines():
                command = re.sub(r"\s+#.*$", "", line).strip()
                if not command.startswith(".venv/bin/kappa-orch "):
                    continue
                rest = command.removeprefix(".venv/bin/kappa-orch ")
                if any(rest.split("[")[0].strip().split() == r.split() for r in READ_ONLY):
                    lines.append(rest.split("[")[0].strip())
    return sorted(set(lines))


def test_the_docs_read_only_commands_run(stack: StackConfig, tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    commands = _cli_lines()
    assert {"validate", "plan", "status", "stack status"} <= set(commands)
    cli = str(Path(sys.executable).parent / "kappa-orch")
    for command in commands:
        done = subprocess.run(
            [cli, *shlex.split(command)],
            cwd=folder,
            env=_env(stack, folder),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"kappa-orch {command}: {done.stdout}{done.stderr}"
