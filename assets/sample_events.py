"""Sample events for the reference platform: card authorizations and their settlements.

Deterministic for a seed. Timestamps advance from `start_ms` by `step_ms` per
authorization; a settlement follows about 80% of the approved authorizations one
hour later.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

AUTHORIZATIONS_TOPIC = "payments.authorizations"
SETTLEMENTS_TOPIC = "payments.settlements"
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@dataclass(frozen=True)
class SampleEvents:
    authorizations: list[dict[str, Any]]
    settlements: list[dict[str, Any]]


def sample_events(
    count: int,
    *,
    seed: int = 11,
    start_ms: int = START_MS,
    step_ms: int = 2_000,
    accounts: int = 200,
    merchants: int = 40,
    id_prefix: str = "auth",
) -> SampleEvents:
    rng = random.Random(seed)
    authorizations: list[dict[str, Any]] = []
    settlements: list[dict[str, Any]] = []
    for i in range(count):
        ts = start_ms + i * step_ms
        status = "approved" if rng.random() < 0.9 else "declined"
        auth = {
            "auth_id": f"{id_prefix}-{seed}-{i:08d}",
            "account": f"acct-{rng.randrange(accounts):04d}",
            "merchant": f"m-{rng.randrange(merchants):03d}",
            "amount_cents": rng.randrange(100, 50_000),
            "status": status,
            "ts": ts,
        }
        authorizations.append(auth)
        if status == "approved" and rng.random() < 0.8:
            settlements.append(
                {
                    "settlement_id": f"stl-{seed}-{i:08d}",
                    "auth_id": auth["auth_id"],
                    "settled_cents": auth["amount_cents"],
                    "ts": ts + 3_600_000,
                }
            )
    return SampleEvents(authorizations, settlements)
