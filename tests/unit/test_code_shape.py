"""The library stays readable: no function over 60 lines, no module over 400."""

from __future__ import annotations

import ast
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[2] / "kappa_orch"
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400


def test_no_function_or_module_is_too_long() -> None:
    too_long = []
    for path in sorted(LIBRARY.rglob("*.py")):
        source = path.read_text()
        name = path.relative_to(LIBRARY.parent)
        if len(source.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{name}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}:{node.lineno} {node.name}: {lines} lines")
    assert too_long == []
