"""The replay benchmarks at smoke size (tests/integration/bench_smoke.py says why)."""

from __future__ import annotations

import pytest

from tests.integration.bench_smoke import runs_green

pytestmark = pytest.mark.integration

SMOKE = [
    ("reprocess.py", ["--events", "3000"], "ratio (reprocess / bare)"),
    ("limits.py", ["--events", "3000"], "replay (kappa_orch)"),
    ("backfill.py", ["--days", "2", "--events-per-day", "500", "--days-per-run", "2"], "events/s"),
]


@pytest.mark.parametrize(("script", "args", "figure"), SMOKE, ids=[s for s, _, _ in SMOKE])
def test_the_benchmark_runs_green_at_smoke_size(script: str, args: list[str], figure: str) -> None:
    runs_green(script, args, figure)
