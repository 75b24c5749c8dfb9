"""Every benchmark runs green on the stack the tests run on, at smoke size (issue 27: the
reprocess benchmark was broken on main for a session, its bare side refused by least
privilege, and nothing noticed; so was swap_readers.py, refused by the registry's state
machine). Each runs as a person runs it, as a script, against the stack the environment
names; a smoke run asserts that it ends well and prints its figures, never what the
figures are (machines are shared and noisy). Two test files (test_bench_*.py) share them
out between the parallel test workers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def runs_green(script: str, args: list[str], figure: str) -> None:
    """The benchmark's script, run to its end: exit 0, no traceback, its figure printed."""
    env = {k: v for k, v in os.environ.items() if k != "KAPPA_DEPLOYMENT"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    assert figure in done.stdout, done.stdout[-2000:]
