"""Headless Chromium (Debian's `chromium`) against a running Dagster UI: the rendered
page's visible text, and screenshots. The UI is a single-page app; Chromium's virtual
time budget lets it finish its GraphQL requests before the DOM is read."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]


def _chromium(*args: str, budget_ms: int, height: int = 1000) -> str:
    assert CHROMIUM, "chromium is not installed; scripts/bootstrap.sh installs it (apt-get install chromium)"
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--window-size=1600,{height}", f"--virtual-time-budget={budget_ms}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def page_text(url: str, *, budget_ms: int = 20_000) -> str:
    """The page's visible text, whitespace collapsed (scripts and styles left out). The
    window is tall: the UI renders only the rows of a table that are in view."""
    dom = _chromium("--dump-dom", url, budget_ms=budget_ms, height=2400)
    dom = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", dom, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom)))


def screenshot(url: str, path: Path, *, budget_ms: int = 20_000, height: int = 1000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _chromium(f"--screenshot={path}", url, budget_ms=budget_ms, height=height)
    assert path.stat().st_size > 10_000, f"{path} is (nearly) empty"
    return path


def wait_for_page(url: str, ready: Callable[[str], bool], *, timeout_s: float = 120.0) -> str:
    """The page's text once `ready` holds for it (asked again every few seconds)."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = page_text(url)
        if ready(text) or time.monotonic() > deadline:
            return text
        time.sleep(3)
