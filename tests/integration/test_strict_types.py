"""Strict types on the real stack: a source declaring every column type, tens of
thousands of valid events over three partitions with every kind of mistyped, out-of-range,
lossy or ambiguous value mixed in. Each mistyped event is dead-lettered with the reason
that names the field, the JSON type found and the declared type (the first fault in the
documented order when there are several), nothing is rounded or replaced on its way to
the table, and the table holds exactly the oracle's rows, typed."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack.config import StackConfig
from tests.integration.platform import Platform, isolated_platform, run_reprocess

pytestmark = pytest.mark.integration

VALID = 30_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
COLUMNS = [
    ("id", "STRING"),
    ("n", "INT"),
    ("big", "BIGINT"),
    ("d", "DOUBLE"),
    ("m", "DECIMAL(10, 2)"),
    ("b", "BOOLEAN"),
    ("dt", "DATE"),
    ("t", "TIMESTAMP(3)"),
    ("cs", "BIGINT"),
    ("s", "STRING"),
    ("ts", "BIGINT"),
]
SQL = "SELECT id, n, big, d, m, b, dt, t, cs, s, ts FROM typed\n"


def spec(topic: str, dead_letters: str) -> dict[str, Any]:
    source_columns = [{"name": n, "type": t} | ({"coerce": True} if n == "cs" else {}) for n, t in COLUMNS]
    return {
        "name": "typed_events",
        "owner": "data@example.com",
        "sources": [
            {
                "name": "typed",
                "topic": topic,
                "columns": source_columns,
                "event_time": {"column": "event_time", "from": "ts", "watermark_delay": "5s"},
            }
        ],
        "sql": "typed_events.sql",
        "target": {
            "alias": "analytics.typed_events",
            "primary_key": ["id"],
            "columns": [{"name": n, "type": t} for n, t in COLUMNS],
        },
        "dead_letters": {"topic": dead_letters},
        "catch_up": {"max_lag": 100, "stable_for": "5s"},
    }


def base(ident: str, ts: int) -> dict[str, Any]:
    return {
        "id": ident,
        "n": 1,
        "big": 2,
        "d": 1.5,
        "m": 12.34,
        "b": True,
        "dt": "2026-01-02",
        "t": "2026-01-02 03:04:05.678",
        "cs": 7,
        "s": "x",
        "ts": ts,
    }


def row_of(event: dict[str, Any]) -> tuple[Any, ...]:
    """The oracle's row of a valid event, as PostgreSQL returns it."""
    t = event["t"].replace("T", " ")
    stamp = datetime.strptime(t, "%Y-%m-%d %H:%M:%S.%f" if "." in t else "%Y-%m-%d %H:%M:%S")
    return (
        event["id"],
        int(event["n"]),
        int(event["big"]),
        float(event["d"]),
        Decimal(str(event["m"])).quantize(Decimal("0.01")),
        bool(event["b"]),
        date.fromisoformat(event["dt"]),
        stamp,
        int(event["cs"]),
        event["s"],
        int(event["ts"]),
    )


LONE_SURROGATE = "field s contains a lone UTF-16 surrogate (PostgreSQL would store it as '?')"
AHEAD = "event time ts is more than 1h ahead of the record's Kafka timestamp (event_time.max_ahead)"
DEEP = "[" * 600 + "]" * 600
NESTED_OK = "[" * 100 + "]" * 100

# (what is changed in a valid event, the reason, or None when it is accepted)
CASES: list[tuple[dict[str, Any] | str, str | None]] = [
    ({"n": "22"}, "field n is a JSON string, declared INT"),
    ({"big": "1772427600017"}, "field big is a JSON string, declared BIGINT"),
    ({"d": "22.5"}, "field d is a JSON string, declared DOUBLE"),
    ({"s": 22}, "field s is a JSON number, declared STRING"),
    ({"s": True}, "field s is a JSON boolean, declared STRING"),
    ({"m": "12.34"}, "field m is a JSON string, declared DECIMAL(10, 2)"),
    ({"m": 12.345}, "field m has more than 2 digits after the decimal point, declared DECIMAL(10, 2)"),
    ({"m": 123456789.1}, "field m is out of range for DECIMAL(10, 2)"),
    ({"m": "RAW:12.3400"}, None),  # trailing zeros are not digits lost
    ({"m": "RAW:1e2"}, None),
    ({"n": 2147483648}, "field n is out of range for INT"),
    ({"n": -2147483648}, None),
    ({"n": 1.0}, "field n is a JSON number with a fraction or exponent, declared INT"),
    ({"n": "RAW:1e3"}, "field n is a JSON number with a fraction or exponent, declared INT"),
    ({"big": 9223372036854775808}, "field big is out of range for BIGINT"),
    ({"big": 9223372036854775807}, None),
    ({"d": "RAW:1e400"}, "field d is out of range for DOUBLE"),
    ({"d": "RAW:NaN"}, "not a JSON object"),
    ({"d": "RAW:Infinity"}, "not a JSON object"),
    ({"b": "true"}, "field b is a JSON string, declared BOOLEAN"),
    ({"b": 1}, "field b is a JSON number, declared BOOLEAN"),
    ({"dt": "2026-02-30"}, "field dt is not a DATE (YYYY-MM-DD, years 1 to 9999)"),
    ({"dt": 20260102}, "field dt is a JSON number, declared DATE"),
    ({"t": "2026-01-02T03:04:05"}, None),
    (
        {"t": "2026-01-02 03:04:05.6789"},
        "field t is not a TIMESTAMP(3) (YYYY-MM-DD HH:MM:SS[.fff], T allowed for the space, no zone)",
    ),
    (
        {"t": "2026-01-02T03:04:05Z"},
        "field t is not a TIMESTAMP(3) (YYYY-MM-DD HH:MM:SS[.fff], T allowed for the space, no zone)",
    ),
    ({"n": [1]}, "field n is a JSON array, declared INT"),
    ({"s": {"a": 1}}, "field s is a JSON object, declared STRING"),
    ({"s": None}, "field s is null"),
    ({"s": "DROP"}, "field s is missing"),
    ({"s": 'RAW:"\\ud800"'}, LONE_SURROGATE),
    ({"s": 'RAW:"a\\udc00b"'}, LONE_SURROGATE),
    ({"s": 'RAW:"\\ud83d\\ude00"'}, None),  # a pair is one character
    ({"s": "a\u0000b"}, "field s contains a NUL character (PostgreSQL refuses it)"),
    ({"cs": "42"}, None),  # coerce: a string holding a number
    ({"cs": "4.2"}, "field cs is a JSON number with a fraction or exponent, declared BIGINT"),
    ({"cs": "x"}, "field cs is a JSON string that is not a number, declared BIGINT"),
    ({"extra": f"RAW:{DEEP}"}, "payload nests deeper than 500 levels"),
    ({"extra": f"RAW:{NESTED_OK}"}, None),  # extra fields are allowed
    ({"n": "1", "s": 5}, "field n is a JSON string, declared INT"),  # the first column wins
    ({"n": 'RAW:1, "n": 2'}, "field n appears more than once"),
    ({"ts": "1772427600017"}, "field ts is a JSON string, declared BIGINT"),
    ({"ts": "AHEAD"}, AHEAD),
]


def encode(ident: str, ts: int, change: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """The payload and the event as the oracle reads it (RAW: values are written as is)."""
    event = base(ident, ts)
    raw: dict[str, str] = {}
    for key, value in change.items():
        if value == "DROP":
            event.pop(key)
        elif value == "AHEAD":
            event[key] = ts + 2 * 3_600_000
        elif isinstance(value, str) and value.startswith("RAW:"):
            raw[key] = value[4:]
            event[key] = f"@@{key}@@"
        else:
            event[key] = value
    payload = json.dumps(event)
    for key, value in raw.items():
        payload = payload.replace(f'"@@{key}@@"', value)
    if "m" in raw:
        event["m"] = Decimal(raw["m"])
    if "n" in raw and raw["n"].isdigit():
        event["n"] = int(raw["n"])
    if "s" in raw:
        event["s"] = json.loads(raw["s"])
    return payload.encode(), event


@pytest.fixture
def platform(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> Iterator[Platform]:
    with isolated_platform(stack, kafka, flink, tmp_path, only=["account_latest"]) as platform:
        topic = platform.topic("events.typed")
        kafka.create_topic(topic, partitions=3, config={"retention.ms": "-1"})
        raw = spec(topic, platform.dead_letter_topic("typed_events"))
        (platform.specs / "typed_events.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        (platform.specs / "typed_events.sql").write_text(SQL)
        try:
            yield platform
        finally:
            kafka.delete_topic(topic)


def test_every_declared_type_is_strict_and_every_fault_is_named(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource
) -> None:
    rng = random.Random(23)
    topic = platform.topic("events.typed")
    records: list[tuple[str, bytes, int]] = []  # key, payload, timestamp
    want_rows: dict[str, tuple[Any, ...]] = {}
    want_reasons: dict[str, str] = {}
    for i in range(VALID):
        ts = T0 + i * 8_000 + rng.randrange(1_000)  # three days
        event = base(f"v{i}", ts)
        event.update(
            n=rng.randrange(-(2**31), 2**31),
            big=rng.randrange(-(2**63), 2**63),
            d=rng.uniform(-1e6, 1e6),
            m=float(Decimal(rng.randrange(-(10**9), 10**9)) / 100),
            b=rng.random() < 0.5,
            s=rng.choice(["plain", "ünïcödé", "emoji 😀", 'quote " and \\ slash', ""]),
        )
        records.append((event["id"], json.dumps(event).encode(), ts))
        want_rows[event["id"]] = row_of(event)
    # the cases, three copies each, spread through the log (skewed: keys pick partitions)
    for copy in range(3):
        for index, (change, reason) in enumerate(CASES):
            ident = f"case-{index}-{copy}"
            ts = T0 + rng.randrange(VALID) * 8_000
            payload, event = encode(ident, ts, change if isinstance(change, dict) else {})
            records.insert(rng.randrange(len(records)), (ident, payload, ts))
            if reason is None:
                want_rows[ident] = row_of(event)
            else:
                want_reasons[ident] = reason
    kafka.produce(
        topic,
        [payload for _, payload, _ in records],
        key=iter_keys([key for key, _, _ in records]),
        timestamp_ms=iter_keys([ts for _, _, ts in records]),
    )

    pipeline = platform.pipelines()["typed_events"]
    assert run_reprocess(platform, pipeline, kafka, flink).success

    deadline = time.monotonic() + 240
    rows: dict[str, tuple[Any, ...]] = {}
    while time.monotonic() < deadline:
        with platform.warehouse.begin() as conn:
            rows = {r[0]: tuple(r) for r in conn.execute(text("SELECT * FROM analytics.typed_events"))}
        if len(rows) >= len(want_rows):
            break
        time.sleep(2)
    assert set(rows) == set(want_rows), sorted(set(rows) ^ set(want_rows))[:10]
    wrong = {k: (rows[k], want_rows[k]) for k in want_rows if rows[k] != want_rows[k]}
    assert not wrong, list(wrong.items())[:3]
    assert rows["case-32-0"][9] == "😀"  # a surrogate pair, stored as one character

    letters = read_letters(kafka, platform.dead_letter_topic("typed_events"), len(want_reasons))
    keys = {
        (r.partition, r.offset): r.key.decode() for r in read_letters(kafka, topic, len(records), raw=True)
    }
    found = {keys[(x["source_partition"], x["source_offset"])]: x["reason"] for x in letters}
    assert found == want_reasons


def iter_keys(values: list[Any]) -> Any:
    """A key/timestamp function for KafkaResource.produce, which calls it once per value in order."""
    it = iter(values)
    return lambda _value: next(it)


def read_letters(kafka: KafkaResource, topic: str, count: int, *, raw: bool = False) -> list[Any]:
    deadline = time.monotonic() + 90
    records: list[Any] = []
    while time.monotonic() < deadline:
        records = kafka.consume(topic, max_records=count + 100, timeout_s=10)
        if len(records) >= count:
            break
        time.sleep(2)
    assert len(records) == count, (len(records), count)
    return records if raw else [json.loads(r.value) for r in records]
