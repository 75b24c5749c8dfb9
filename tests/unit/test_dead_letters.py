"""Dead letters as data, from recorded records: parsing a letter, the running tally by
reason and version, the latest letters, the observation the dead-letter topic gets."""

from __future__ import annotations

import json

from kappa_orch.dagster.letters import letter_observation, letter_topics
from kappa_orch.dead_letters import LATEST, SAMPLE_CHARS, add_letters, new_tally, parse_letter
from kappa_orch.resources.kafka import Record
from kappa_orch.spec.load import load_pipelines
from tests.unit.test_observe import ASSETS


def record(offset: int, reason: str, version: int = 1, payload: str = '{"a": 1}') -> Record:
    body = {
        "pipeline": "daily_spend", "version": version, "source_topic": "payments.authorizations",
        "source_partition": offset % 3, "source_offset": 100 + offset, "reason": reason, "payload": payload,
        "payload_encoding": "text", "payload_size": len(payload), "payload_sha256": "x",
        "payload_truncated": False,
    }  # fmt: skip
    return Record(offset % 2, offset, None, None, json.dumps(body).encode())


def test_a_letter_is_parsed_and_a_foreign_record_is_not_one() -> None:
    letter = parse_letter(record(4, "not a JSON object"))
    assert letter is not None
    assert (letter.version, letter.source_partition, letter.source_offset, letter.reason) == (
        1, 1, 104, "not a JSON object",
    )  # fmt: skip
    assert parse_letter(Record(0, 0, None, None, b"hello")) is None
    assert parse_letter(Record(0, 0, None, None, b'{"pipeline": "x"}')) is None


def test_the_tally_counts_by_reason_and_version_and_keeps_the_latest_letters() -> None:
    first = [parse_letter(record(i, "not a JSON object")) for i in range(4)]
    tally = add_letters(new_tally(), [x for x in first if x], {0: 2, 1: 2})
    later = [
        parse_letter(record(10 + i, "field amount_cents is not BIGINT", version=2, payload="y" * 500))
        for i in range(3)
    ]
    tally = add_letters(tally, [x for x in later if x], {0: 7})
    assert tally["total"] == 7
    assert tally["by_reason"] == {"not a JSON object": 4, "field amount_cents is not BIGINT": 3}
    assert tally["by_version"] == {"daily_spend v1": 4, "daily_spend v2": 3}
    assert tally["next"] == {"0": 7, "1": 2}
    assert len(tally["latest"]) == LATEST and tally["latest"][-1]["source_offset"] == 112
    assert tally["latest"][-1]["payload"] == "y" * SAMPLE_CHARS + "…"
    json.dumps(tally)  # it lives in the sensor's cursor

    observation = letter_observation("kappa.dead-letters.daily_spend", tally)
    metadata = {k: v.value for k, v in observation.metadata.items()}
    assert metadata["letters_total"] == 7
    assert metadata["letters/reason/not a JSON object"] == 4
    assert metadata["letters/version/daily_spend v2"] == 3
    assert "| daily_spend v2 | payments.authorizations[0]@112 | field amount_cents is not BIGINT |" in str(
        metadata["latest_letters"]
    )


def test_every_dead_letter_topic_that_is_not_a_source_is_observed() -> None:
    pipelines = load_pipelines(ASSETS)
    assert letter_topics(pipelines) == sorted({p.spec.dead_letter_topic for p in pipelines})
