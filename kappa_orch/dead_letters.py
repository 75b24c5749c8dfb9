"""Dead letters as data: reading a pipeline's dead-letter topic, one version's letters,
and a running tally (count by reason and version, the latest letters) that the stream
observer keeps in its cursor and plots on the dead-letter topic's asset.

A letter is the JSON object the job writes (flink_sql.dead_letter_sink_ddl): pipeline,
version, source topic, partition and offset, the reason, and the payload's first
characters with its size and SHA-256."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from kappa_orch.resources.kafka import KafkaResource, Record

LATEST = 5  # letters kept as samples
SAMPLE_CHARS = 200  # of a sample's payload


@dataclass(frozen=True)
class Letter:
    """One dead letter, where it sits in the dead-letter topic, and what it says."""

    partition: int
    offset: int
    pipeline: str
    version: int
    source_topic: str
    source_partition: int
    source_offset: int
    reason: str
    payload: str | None
    payload_size: int | None
    payload_truncated: bool


def parse_letter(record: Record) -> Letter | None:
    """The letter in a record of a dead-letter topic; None when it is not one of ours."""
    try:
        body = json.loads(record.value or b"")
        return Letter(
            partition=record.partition,
            offset=record.offset,
            pipeline=str(body["pipeline"]),
            version=int(body["version"]),
            source_topic=str(body["source_topic"]),
            source_partition=int(body["source_partition"]),
            source_offset=int(body["source_offset"]),
            reason=str(body["reason"]),
            payload=body.get("payload"),
            payload_size=body.get("payload_size"),
            payload_truncated=bool(body.get("payload_truncated")),
        )
    except (ValueError, KeyError, TypeError):
        return None


def sample(letter: Letter) -> dict[str, Any]:
    """A letter as a sample row: its payload cut to SAMPLE_CHARS characters."""
    row = asdict(letter)
    payload = letter.payload or ""
    row["payload"] = payload[:SAMPLE_CHARS] + (
        "…" if len(payload) > SAMPLE_CHARS or letter.payload_truncated else ""
    )
    return row


def new_tally() -> dict[str, Any]:
    """An empty tally: next offset per partition, counts by reason and version, latest letters."""
    return {"next": {}, "by_reason": {}, "by_version": {}, "total": 0, "latest": []}


def add_letters(
    tally: dict[str, Any], letters: Iterable[Letter], next_offsets: Mapping[int, int]
) -> dict[str, Any]:
    """The tally with these letters counted (pure; `next_offsets`: where reading goes on)."""
    result = {**tally, "by_reason": dict(tally["by_reason"]), "by_version": dict(tally["by_version"])}
    latest = list(tally["latest"])
    for letter in letters:
        result["by_reason"][letter.reason] = result["by_reason"].get(letter.reason, 0) + 1
        key = f"{letter.pipeline} v{letter.version}"
        result["by_version"][key] = result["by_version"].get(key, 0) + 1
        result["total"] += 1
        latest.append(sample(letter))
    result["latest"] = latest[-LATEST:]
    result["next"] = {**tally["next"], **{str(p): o for p, o in next_offsets.items()}}
    return result


def read_new_letters(
    kafka: KafkaResource, topic: str, tally: dict[str, Any], *, max_records: int
) -> tuple[list[Letter], dict[int, int]]:
    """Up to `max_records` letters written since the tally's offsets (from the earliest
    held at first), and the offsets to go on from."""
    start = {int(p): int(o) for p, o in tally["next"].items()}
    records = kafka.read(topic, start, max_records=max_records)
    following = dict(start)
    for record in records:
        following[record.partition] = max(following.get(record.partition, 0), record.offset + 1)
    return [letter for r in records if (letter := parse_letter(r)) is not None], following


def letters_of(
    kafka: KafkaResource, topic: str, *, pipeline: str, version: int | None, max_records: int = 1_000_000
) -> list[Letter]:
    """Every letter of one pipeline (and version, when given) held in its topic."""
    records = kafka.read(topic, {}, max_records=max_records)
    letters = [parse_letter(r) for r in records]
    return [
        letter
        for letter in letters
        if letter is not None
        and letter.pipeline == pipeline
        and (version is None or letter.version == version)
    ]
