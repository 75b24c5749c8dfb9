from __future__ import annotations

import json

from tests.integration.smoke import generate_events


def test_generator_is_deterministic_and_breaks_every_nth_event() -> None:
    events = generate_events(10_000, malformed_every=1_000)
    assert events == generate_events(10_000, malformed_every=1_000)
    broken = []
    for i, payload in enumerate(events):
        try:
            event = json.loads(payload)
        except ValueError:
            broken.append((i, "not_json"))
            continue
        if "account" not in event:
            broken.append((i, "missing_account"))
        elif not isinstance(event["amount_cents"], int):
            broken.append((i, "bad_amount"))
    assert [i for i, _ in broken] == list(range(999, 10_000, 1_000))
    assert {kind for _, kind in broken} == {"not_json", "missing_account", "bad_amount"}
