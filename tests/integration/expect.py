"""Expected results computed independently of the code under test, and a wait that
fails fast when the Flink job stops running."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from kappa_orch.engine.flink.resource import FlinkResource


def aggregate(payloads: list[bytes]) -> tuple[dict[str, tuple[int, int]], int]:
    """Per-account (events, amount) of the valid events, and the number of malformed ones."""
    totals: dict[str, tuple[int, int]] = {}
    malformed = 0
    for payload in payloads:
        try:
            event = json.loads(payload)
        except ValueError:
            malformed += 1
            continue
        account, amount = event.get("account"), event.get("amount_cents")
        if not isinstance(account, str) or not isinstance(amount, int) or isinstance(amount, bool):
            malformed += 1
            continue
        n, total = totals.get(account, (0, 0))
        totals[account] = (n + 1, total + amount)
    return totals, malformed


def wait_until(
    condition: Callable[[], bool], *, flink: FlinkResource, job_id: str, timeout_s: float = 300
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        job = flink.job(job_id)
        assert job.state == "RUNNING", f"job {job_id} is {job.state}: {flink.job_exception(job_id)}"
        assert time.monotonic() < deadline, "timed out waiting for the table"
        time.sleep(1)
