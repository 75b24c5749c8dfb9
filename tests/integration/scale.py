"""A realistic log for the oracle tests, and the oracle: what every reference pipeline
must serve, computed in Python from the events alone (no Flink semantics borrowed).

The log: authorizations over three days (UTC) in three partitions, each partition in
event-time order, keyed by account with a Zipf-like skew (partitions of uneven volume);
a settlement an hour after most approved authorizations. Mixed in at random places,
with event times days ahead of their neighbours (the trap that made windows lose most
of their input): broken events of every kind the dead letters know, payloads that are
not UTF-8, text with NUL, and valid-looking events from a device with a wrong clock
(event time days ahead of the record's Kafka timestamp). Kafka timestamps are the times
the records were written to the log: the event time of a normal event.
"""

from __future__ import annotations

import json
import random
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

START_MS = 1_772_323_200_000  # 2026-03-01T00:00:00Z
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
PARTITIONS = 3
BROKEN_KINDS = [
    *("not_json", "array", "tombstone", "missing", "null", "object"),
    *("text_amount", "float_amount", "not_utf8", "nul", "bad_ts"),
]


@dataclass
class Partitioned:
    """One topic's records per partition, in offset order: (Kafka timestamp, value)."""

    records: dict[int, list[tuple[int, bytes | None]]] = field(
        default_factory=lambda: {p: [] for p in range(PARTITIONS)}
    )
    # (partition, offset) -> why the record must be dead-lettered
    dead: dict[tuple[int, int], str] = field(default_factory=dict)

    def append(self, partition: int, timestamp_ms: int, value: bytes | None, dead: str | None = None) -> None:
        if dead is not None:
            self.dead[(partition, len(self.records[partition]))] = dead
        self.records[partition].append((timestamp_ms, value))

    @property
    def total(self) -> int:
        return sum(len(r) for r in self.records.values())


@dataclass
class ScaleLog:
    authorizations: list[dict[str, Any]]  # the valid ones, in event-time order
    settlements: list[dict[str, Any]]
    auth_log: Partitioned
    settlement_log: Partitioned


def partition_of(key: str) -> int:
    return zlib.crc32(key.encode()) % PARTITIONS


def _broken(rng: random.Random, event: dict[str, Any]) -> tuple[bytes | None, str]:
    """A broken authorization (its time pushed days ahead) and the kind of break."""
    ahead = dict(event, ts=event["ts"] + 2 * DAY_MS + rng.randrange(DAY_MS))
    kind = rng.choice(BROKEN_KINDS)
    if kind == "not_json":
        return b"{account: " + str(ahead["ts"]).encode(), kind
    if kind == "array":
        return json.dumps([ahead]).encode(), kind
    if kind == "tombstone":
        return None, kind
    if kind == "missing":
        return json.dumps({k: v for k, v in ahead.items() if k != "merchant"}).encode(), kind
    if kind == "null":
        return json.dumps(dict(ahead, status=None)).encode(), kind
    if kind == "object":
        return json.dumps(dict(ahead, account={"id": ahead["account"]})).encode(), kind
    if kind == "text_amount":
        return json.dumps(dict(ahead, amount_cents="12x")).encode(), kind
    if kind == "float_amount":
        return json.dumps(dict(ahead, amount_cents=12.5)).encode(), kind
    if kind == "not_utf8":
        # a valid-looking event whose account holds bytes that are not UTF-8
        text = json.dumps(dict(ahead, account="acct-\u0001")).encode()
        return text.replace(b"\\u0001", b"\xff\xfe"), kind
    if kind == "nul":
        return json.dumps(dict(ahead, account=ahead["account"] + "\u0000x")).encode(), kind
    return json.dumps(dict(ahead, ts="yesterday")).encode(), kind


def scale_log(
    events: int = 200_000,
    *,
    days: int = 3,
    seed: int = 7,
    accounts: int = 400,
    merchants: int = 60,
    broken_share: float = 0.004,
    wrong_clock: int = 40,
) -> ScaleLog:
    rng = random.Random(seed)
    names = [f"acct-{i:04d}" for i in range(accounts)]
    weights = [1 / (i + 1) ** 0.9 for i in range(accounts)]  # a few hot accounts
    times = sorted(rng.sample(range(days * DAY_MS), events))
    chosen = rng.choices(names, weights, k=events)
    auths: list[dict[str, Any]] = []
    settlements: list[dict[str, Any]] = []
    auth_log, settlement_log = Partitioned(), Partitioned()
    for i, (offset_ms, account) in enumerate(zip(times, chosen, strict=True)):
        ts = START_MS + offset_ms
        auth = {
            "auth_id": f"a-{seed}-{i:07d}",
            "account": account,
            "merchant": f"m-{rng.randrange(merchants):03d}",
            "amount_cents": rng.randrange(100, 50_000),
            "status": "approved" if rng.random() < 0.9 else "declined",
            "ts": ts,
        }
        partition = partition_of(account)
        if rng.random() < broken_share:
            value, kind = _broken(rng, auth)
            auth_log.append(partition, ts, value, dead=kind)
        if wrong_clock and rng.random() < wrong_clock / events:
            # valid in every field, but its device's clock runs five days ahead
            wrong = dict(auth, auth_id=auth["auth_id"] + "-clock", ts=ts + 5 * DAY_MS)
            auth_log.append(partition, ts, json.dumps(wrong).encode(), dead="wrong_clock")
        auth_log.append(partition, ts, json.dumps(auth).encode())
        auths.append(auth)
        if auth["status"] == "approved" and rng.random() < 0.8:
            settlement = {
                "settlement_id": f"s-{seed}-{i:07d}",
                "auth_id": auth["auth_id"],
                "settled_cents": auth["amount_cents"],
                "ts": ts + HOUR_MS,
            }
            settlements.append(settlement)
    # each settlement partition in event-time order too
    for settlement in sorted(settlements, key=lambda s: s["ts"]):
        settlement_log.append(
            partition_of(settlement["auth_id"]), settlement["ts"], json.dumps(settlement).encode()
        )
    return ScaleLog(auths, settlements, auth_log, settlement_log)


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def daily_spend(
    auths: list[dict[str, Any]], statuses: frozenset[str] | set[str] = frozenset({"approved"})
) -> set[tuple[Any, ...]]:
    """(account, UTC day, authorizations, spend) over the authorizations with these statuses."""
    spend: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0])
    for auth in auths:
        if auth["status"] in statuses:
            row = spend[(auth["account"], _utc(auth["ts"]).date())]
            row[0] += 1
            row[1] += auth["amount_cents"]
    return {(account, day, n, total) for (account, day), (n, total) in spend.items()}


def merchant_risk(auths: list[dict[str, Any]], watermark_ms: int) -> set[tuple[Any, ...]]:
    """Hourly windows per merchant that the watermark has closed (end - 1 ms <= watermark)."""
    windows: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0, 0])
    for auth in auths:
        window = windows[(auth["merchant"], auth["ts"] // HOUR_MS * HOUR_MS)]
        window[0] += 1
        window[1] += auth["status"] == "declined"
        window[2] += auth["amount_cents"]
    return {
        (merchant, _utc(start).replace(tzinfo=None), n, declines, amount)
        for (merchant, start), (n, declines, amount) in windows.items()
        if start + HOUR_MS - 1 <= watermark_ms
    }


def account_latest(auths: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    latest: dict[str, dict[str, Any]] = {}
    for auth in auths:
        if auth["account"] not in latest or auth["ts"] > latest[auth["account"]]["ts"]:
            latest[auth["account"]] = auth
    return {
        (a["account"], a["auth_id"], a["merchant"], a["amount_cents"], a["status"], a["ts"])
        for a in latest.values()
    }


def auth_settlement(auths: list[dict[str, Any]], settlements: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    by_id = {a["auth_id"]: a for a in auths}
    return {
        (
            s["auth_id"],
            by_id[s["auth_id"]]["account"],
            by_id[s["auth_id"]]["amount_cents"],
            s["settled_cents"],
            s["settlement_id"],
        )
        for s in settlements
        if s["auth_id"] in by_id
    }


def watermark(log: Partitioned, valid_ts: dict[tuple[int, int], int], delay_ms: int) -> int:
    """The event-time watermark once every record is read: the slowest partition's newest
    valid event time, minus the delay (dead letters do not count)."""
    newest = defaultdict(lambda: -(2**62))
    for (partition, _offset), ts in valid_ts.items():
        newest[partition] = max(newest[partition], ts)
    return min(newest[p] for p in range(PARTITIONS)) - delay_ms


def valid_times(log: Partitioned) -> dict[tuple[int, int], int]:
    """(partition, offset) -> event time of every record that is not a dead letter."""
    times = {}
    for partition, records in log.records.items():
        for offset, (_ts, value) in enumerate(records):
            if (partition, offset) not in log.dead and value is not None:
                times[(partition, offset)] = int(json.loads(value)["ts"])
    return times
