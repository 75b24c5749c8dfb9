"""The change and control-plane benchmarks at smoke size (tests/integration/bench_smoke.py says why)."""

from __future__ import annotations

import pytest

from tests.integration.bench_smoke import runs_green

pytestmark = pytest.mark.integration

SMOKE = [
    ("change.py", ["--events", "3000"], "events/s"),
    (
        "change_suite.py",
        ["--events", "3000", "--shapes", "auth_copy", "--only", "ac01,ac05"],
        "cheaper than a replay",
    ),
    ("swap_readers.py", ["--readers", "2", "--swaps", "2", "--rows", "1000", "--quiet-s", "1"], "readers"),
    ("validate.py", ["--sizes", "10", "--repeat", "1"], ""),
    ("control_plane.py", ["--sizes", "10", "--repeat", "1"], ""),
]


@pytest.mark.parametrize(("script", "args", "figure"), SMOKE, ids=[s for s, _, _ in SMOKE])
def test_the_benchmark_runs_green_at_smoke_size(script: str, args: list[str], figure: str) -> None:
    runs_green(script, args, figure)
