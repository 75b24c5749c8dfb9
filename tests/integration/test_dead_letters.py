"""Dead letters on the real stack: a topic with valid, malformed and schema-violating
events. Every broken event reaches the dead-letter topic with its reason and source
offset, the alias serves exactly the valid events' rows, and the input-balance check
shows input = parsed + dead-lettered per partition."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assets.sample_events import sample_events
from kappa_orch import topic_key
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.lifecycle.gate import INPUT_BALANCE
from kappa_orch.registry import store as registry
from kappa_orch.resources.kafka import KafkaResource, Record
from kappa_orch.stack.config import StackConfig
from tests.integration.daily_spend import cli, expected, run, wait_serving
from tests.integration.platform import Platform, isolated_platform, observe_once

pytestmark = pytest.mark.integration

VALID = 3_000


def broken_events() -> list[tuple[bytes | None, str]]:
    """(payload, the reason the pipeline must give) for daily_spend's source schema."""
    good = {"auth_id": "x", "account": "acct-9", "merchant": "m-1", "amount_cents": 5, "status": "approved"}
    kinds: list[tuple[Any, str]] = [
        (b"{not json", "not a JSON object"),
        (b"[1, 2, 3]", "not a JSON object"),
        (b"", "not a JSON object"),
        (None, "empty payload (tombstone)"),
        ({**good, "ts": 1_767_225_600_000, "account": None}, "field account is null"),
        (
            {**good, "ts": 1_767_225_600_000, "account": {"id": 1}},
            "field account is a JSON object, declared STRING",
        ),
        ({k: v for k, v in good.items() if k != "merchant"} | {"ts": 1}, "field merchant is missing"),
        (
            {**good, "ts": 1_767_225_600_000, "amount_cents": "12x"},
            "field amount_cents is a JSON string, declared BIGINT",
        ),
        (
            {**good, "ts": 1_767_225_600_000, "amount_cents": 1.5},
            "field amount_cents is a JSON number with a fraction or exponent, declared BIGINT",
        ),
        ({**good, "ts": "yesterday"}, "field ts is a JSON string, declared BIGINT"),
        (good, "field ts is missing"),
    ]
    events = []
    for copy in range(4):
        for payload, reason in kinds:
            if isinstance(payload, dict):
                payload = json.dumps({**payload, "auth_id": f"bad-{copy}"}).encode()
            events.append((payload, reason))
    return events


@pytest.fixture
def platform(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> Iterator[Platform]:
    with isolated_platform(stack, kafka, flink, tmp_path, only=["daily_spend"]) as platform:
        yield platform


def input_counts(platform: Platform) -> list[registry.InputCount]:
    with platform.warehouse.begin() as conn:
        return registry.input_counts_of(conn, "daily_spend", 1)


def read_all(kafka: KafkaResource, topic: str, count: int, timeout_s: float = 60) -> list[Record]:
    deadline = time.monotonic() + timeout_s
    while True:
        records = kafka.consume(topic, max_records=count + 100, timeout_s=5)
        if len(records) >= count or time.monotonic() > deadline:
            return records
        time.sleep(1)


def test_broken_events_are_dead_lettered_and_counts_balance(
    platform: Platform, stack: StackConfig, kafka: KafkaResource, flink: FlinkResource
) -> None:
    topic = platform.topic("payments.authorizations")
    valid = sample_events(VALID, step_ms=60_000).authorizations
    broken = broken_events()
    # broken events are keyed by their index, so each can be found again by key
    kafka.produce(topic, valid[: VALID // 2], key=lambda e: e["account"])  # type: ignore[index]
    for i, (payload, _) in enumerate(broken):
        kafka.produce(topic, [payload], key=lambda _, i=i: f"broken-{i}")  # type: ignore[list-item, misc]
    kafka.produce(topic, valid[VALID // 2 :], key=lambda e: e["account"])  # type: ignore[index]

    source = kafka.consume(topic, max_records=VALID + len(broken) + 100, timeout_s=20)
    assert len(source) == VALID + len(broken)
    want = {
        (r.partition, r.offset): broken[int(r.key.decode().split("-")[1])][1]
        for r in source
        if r.key is not None and r.key.startswith(b"broken-")
    }
    assert len(want) == len(broken)

    pipeline = platform.pipelines()["daily_spend"]

    assert run(platform, pipeline, kafka, flink).success  # the first version goes live at once
    wait_serving(platform, expected(valid, {"approved"}))
    deadline = time.monotonic() + 60
    while sum(c.records for c in input_counts(platform)) < VALID + len(broken):
        assert time.monotonic() < deadline, input_counts(platform)
        time.sleep(1)
    # the live version's asset again: reports its checks, changes nothing
    result = run(platform, pipeline, kafka, flink)
    assert result.success

    [balance] = [e for e in result.get_asset_check_evaluations() if e.check_name == INPUT_BALANCE]
    assert balance.passed, balance.description
    figures = {k: v.value for k, v in balance.metadata.items()}
    assert (figures["input"], figures["parsed"], figures["dead_lettered"]) == (
        VALID + len(broken),
        VALID,
        len(broken),
    )
    per_partition = figures["partitions"]
    assert sum(p["input"] for p in per_partition) == VALID + len(broken)
    assert all(p["input"] == p["parsed"] + p["dead_lettered"] for p in per_partition)

    letters = read_all(kafka, platform.dead_letter_topic("daily_spend"), len(broken))
    got = {}
    for record in letters:
        letter = json.loads(record.value or b"null")
        assert (letter["pipeline"], letter["version"], letter["source_topic"]) == ("daily_spend", 1, topic)
        original = next(
            r
            for r in source
            if (r.partition, r.offset) == (letter["source_partition"], letter["source_offset"])
        )
        assert letter["payload"] == (original.value.decode() if original.value is not None else None)
        got[letter["source_partition"], letter["source_offset"]] = letter["reason"]
    assert len(letters) == len(broken)  # each broken event once
    assert got == want, sorted((want[k], got.get(k)) for k in want if got.get(k) != want[k])

    status = cli(platform, stack, "status", "--json")
    out, _ = status.communicate(timeout=120)
    assert status.returncode == 0, out
    [state] = json.loads(out)
    [v1] = state["versions"]
    assert (v1["input"], v1["dead_lettered"]) == (VALID + len(broken), len(broken))
    assert state["dead_letter_topic"] == platform.dead_letter_topic("daily_spend")
    text_status = cli(platform, stack, "status")
    out, _ = text_status.communicate(timeout=120)
    [row] = [line.split() for line in out.splitlines() if line.strip().startswith("v1 ")]
    # VERSION FINGERPRINT STATE JOB LAG CHECKPOINT LATE INPUT DEAD-LETTERS TABLE
    assert row[7:9] == [f"{VALID + len(broken):,}", f"{len(broken):,}"]

    # each source partition's letters sit in one dead-letter partition, keyed by source topic
    # and partition, in the order the job read them: what tells a letter written again
    # after a restore from a new one (tests/unit/test_dead_letters.py)
    placed: dict[int, set[int]] = {}
    for record in letters:
        letter = json.loads(record.value or b"null")
        assert json.loads(record.key or b"null") == {
            "source_topic": topic,
            "source_partition": letter["source_partition"],
        }
        placed.setdefault(letter["source_partition"], set()).add(record.partition)
    assert all(len(partitions) == 1 for partitions in placed.values()), placed
    # (two source partitions may share a dead-letter partition: the order holds per source partition)
    in_order = sorted(letters, key=lambda r: (r.partition, r.offset))
    for source_partition in placed:
        offsets = [
            letter["source_offset"]
            for letter in (json.loads(r.value or b"null") for r in in_order)
            if letter["source_partition"] == source_partition
        ]
        assert offsets == sorted(offsets)

    # dead letters as data: one version's broken records, by reason, from the CLI ...
    reasons = Counter(want.values())
    shown = cli(platform, stack, "dead-letters", "daily_spend", "--version", "1", "--limit", "3", "--json")
    out, _ = shown.communicate(timeout=120)
    assert shown.returncode == 0, out
    report = json.loads(out)
    assert (report["broken_records"], report["by_reason"]) == (len(broken), dict(reasons))
    assert report["by_version"] == {"daily_spend v1": len(broken)}
    assert len(report["latest"]) == 3 and all(letter["version"] == 1 for letter in report["latest"])
    newest = [letter["timestamp_ms"] for letter in report["latest"]]
    assert newest == sorted(newest, reverse=True)  # the newest first
    none = cli(platform, stack, "dead-letters", "daily_spend", "--version", "2")
    out, _ = none.communicate(timeout=120)
    assert none.returncode == 1
    assert "daily_spend has no version 2 (its versions: v1)" in out
    # ... and observed on the dead-letter topic's asset, per version and by reason
    events, _ = observe_once(platform, kafka, flink, None)
    [observed] = [e for e in events if e.asset_key == topic_key(platform.dead_letter_topic("daily_spend"))]
    metadata = {k: v.value for k, v in observed.metadata.items()}
    assert metadata["broken_records/daily_spend v1"] == len(broken)
    prefix = "broken_records/daily_spend v1/"
    assert {k.removeprefix(prefix): v for k, v in metadata.items() if k.startswith(prefix)} == dict(reasons)
    assert metadata["letters_written"] == len(broken)
    assert "| daily_spend v1 |" in metadata["latest_letters"]
    # found: dead-letter topics kept the broker's 7 days; the deployment's default is 30 days
    retention = kafka.describe_topic(platform.dead_letter_topic("daily_spend")).config["retention.ms"]
    assert int(retention) == 30 * 86_400_000
