"""The docs as the tests read them: every Markdown file, and its fenced code blocks."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(path: Path, language: str) -> list[str]:
    """The fenced code blocks of one language in a Markdown file (indentation removed)."""
    found = re.findall(rf"^( *)```{language}\n(.*?)^\1```", path.read_text(), flags=re.S | re.M)
    return ["\n".join(line[len(indent) :] for line in body.splitlines()) + "\n" for indent, body in found]
