"""Dead letters as data, from recorded records: parsing a letter, the running tally by
reason and version, the latest letters, the observation the dead-letter topic gets."""

from __future__ import annotations

import json

from kappa_orch.dagster.letters import letter_observation, letter_topics
from kappa_orch.lifecycle.dead_letters import (
    LATEST,
    SAMPLE_CHARS,
    Letter,
    add_letters,
    current_tally,
    distinct,
    new_tally,
    parse_letter,
)
from kappa_orch.resources.kafka import Record
from kappa_orch.spec.load import load_pipelines
from tests.unit.specs import ASSETS


def record(
    offset: int, reason: str, version: int = 1, payload: str = '{"a": 1}', *, source: int | None = None
) -> Record:
    """A letter of source offset 100 + offset (or `source`), keyed as the jobs write it."""
    source_offset = 100 + offset if source is None else source
    body = {
        "pipeline": "daily_spend", "version": version, "source_topic": "payments.authorizations",
        "source_partition": source_offset % 3, "source_offset": source_offset, "reason": reason,
        "payload": payload, "payload_encoding": "text", "payload_size": len(payload), "payload_sha256": "x",
        "payload_truncated": False,
    }  # fmt: skip
    key = json.dumps({"source_topic": "payments.authorizations", "source_partition": source_offset % 3})
    return Record(source_offset % 3, offset, 1_000 + offset, key.encode(), json.dumps(body).encode())


def test_a_letter_is_parsed_and_a_foreign_record_is_not_one() -> None:
    letter = parse_letter(record(4, "not a JSON object"))
    assert letter is not None
    assert (letter.version, letter.source_partition, letter.source_offset, letter.reason) == (
        1, 2, 104, "not a JSON object",
    )  # fmt: skip
    assert letter.keyed and letter.timestamp_ms == 1_004
    assert parse_letter(Record(0, 0, None, None, b"hello")) is None
    assert parse_letter(Record(0, 0, None, None, b'{"pipeline": "x"}')) is None


def letters(records: list[Record]) -> list[Letter]:
    return [x for r in records if (x := parse_letter(r)) is not None]


def test_the_tally_counts_distinct_broken_records_per_version_and_keeps_the_latest_letters() -> None:
    tally = add_letters(
        new_tally(), letters([record(i, "not a JSON object") for i in range(4)]), {0: 2, 1: 2}
    )
    reason = "field amount_cents is a JSON string, declared BIGINT"
    later = [record(10 + i, reason, version=2, payload="y" * 500) for i in range(3)]
    tally = add_letters(tally, letters(later), {0: 7})
    assert tally["by_version"] == {"daily_spend v1": 4, "daily_spend v2": 3}
    assert tally["by_reason"] == {"daily_spend v1": {"not a JSON object": 4}, "daily_spend v2": {reason: 3}}
    assert tally["written"] == 7
    assert tally["next"] == {"0": 7, "1": 2}
    assert len(tally["latest"]) == LATEST and tally["latest"][-1]["source_offset"] == 112
    assert tally["latest"][-1]["payload"] == "y" * SAMPLE_CHARS + "…"
    json.dumps(tally)  # it lives in the sensor's cursor

    observation = letter_observation("kappa.dead-letters.daily_spend", tally)
    metadata = {k: v.value for k, v in observation.metadata.items()}
    assert metadata["letters_written"] == 7
    assert metadata["broken_records/daily_spend v1"] == 4
    assert metadata["broken_records/daily_spend v1/not a JSON object"] == 4
    assert metadata["broken_records/daily_spend v2"] == 3
    assert f"| daily_spend v2 | payments.authorizations[1]@112 | {reason} |" in str(
        metadata["latest_letters"]
    )


def test_letters_written_again_after_a_restore_are_counted_once() -> None:
    # v1 dead-letters source offsets 100..111, is restored from a checkpoint taken after
    # 105, and writes the letters of 106..111 again before new ones (112, 113)
    first = [record(i, "not a JSON object", source=100 + i) for i in range(12)]
    again = [record(12 + i, "not a JSON object", source=106 + i) for i in range(6)]
    new = [record(18 + i, "not a JSON object", source=112 + i) for i in range(2)]
    tally = add_letters(new_tally(), letters(first[:8]), {})
    tally = add_letters(tally, letters(first[8:] + again), {})
    tally = add_letters(tally, letters(new), {})
    assert tally["by_version"] == {"daily_spend v1": 14}
    assert tally["written"] == 20
    # the same letters read by the CLI all at once
    assert len(distinct(letters(first + again + new))) == 14
    # a second version's letters of the same source records are its own
    v2 = [record(30 + i, "not a JSON object", version=2, source=100 + i) for i in range(14)]
    assert add_letters(tally, letters(v2), {})["by_version"] == {"daily_spend v1": 14, "daily_spend v2": 14}


def test_a_tally_from_before_repeats_were_told_apart_is_counted_again() -> None:
    old = {
        "next": {"0": 5},
        "by_reason": {"x": 5},
        "by_version": {"daily_spend v1": 5},
        "total": 5,
        "latest": [],
    }
    assert current_tally(old) == new_tally()
    assert current_tally(None) == new_tally()


def test_every_dead_letter_topic_that_is_not_a_source_is_observed() -> None:
    pipelines = load_pipelines(ASSETS)
    assert letter_topics(pipelines) == sorted({p.spec.dead_letter_topic for p in pipelines})
