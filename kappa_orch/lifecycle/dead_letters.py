"""Dead letters as data: reading a pipeline's dead-letter topic, one version's letters,
and a running tally (broken records by version and reason, the latest letters) that the
stream observer keeps in its cursor and plots on the dead-letter topic's asset.

A letter is the JSON object the job writes (flink_sql.dead_letter_sink_ddl): pipeline,
version, source topic, partition and offset, the reason, and the payload's first
characters with its size and SHA-256.

Every count is of distinct broken input records per version, as the job's own input
counts are: the dead-letter sink is at-least-once, so a version restored from a
checkpoint writes again the letters of the records it reads again. A letter is keyed by
its source topic and partition, so all letters of one source partition sit in one
dead-letter partition in the order the job read them; a letter whose source offset is
not past the highest one already counted for its version and source partition is such a
repeat. (Letters of jobs built before the key was added have none: counted as written.)"""

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
    keyed: bool = False  # keyed by source topic and partition (in source order)
    timestamp_ms: int | None = None  # when it was written
    # a late record's event time and the watermark it arrived at (reason late...)
    event_time: str | None = None
    watermark: str | None = None

    @property
    def source(self) -> tuple[str, int, str, int, int]:
        """The broken input record it stands for, per version."""
        return (self.pipeline, self.version, self.source_topic, self.source_partition, self.source_offset)


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
            keyed=record.key is not None,
            timestamp_ms=record.timestamp_ms,
            event_time=body.get("event_time"),
            watermark=body.get("watermark"),
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


def version_label(pipeline: str, version: int) -> str:
    return f"{pipeline} v{version}"


def new_tally() -> dict[str, Any]:
    """An empty tally: next offset per partition; per version the distinct broken records,
    in all and by reason, and the highest source offset counted per source partition; the
    letters written (repeats included) and the latest letters."""
    return {"next": {}, "seen": {}, "by_version": {}, "by_reason": {}, "written": 0, "latest": []}


def current_tally(tally: dict[str, Any] | None) -> dict[str, Any]:
    """The tally to go on from: a new one for none, or for one from before repeats were told
    apart (it is counted again from the earliest letter held)."""
    return tally if tally is not None and "seen" in tally else new_tally()


def add_letters(
    tally: dict[str, Any], letters: Iterable[Letter], next_offsets: Mapping[int, int]
) -> dict[str, Any]:
    """The tally with these letters counted (pure; `next_offsets`: where reading goes on)."""
    seen = dict(tally["seen"])
    by_version = dict(tally["by_version"])
    by_reason = {version: dict(reasons) for version, reasons in tally["by_reason"].items()}
    latest = list(tally["latest"])
    written = tally["written"]
    for letter in letters:
        written += 1
        if letter.keyed:
            where = f"{letter.pipeline} v{letter.version}|{letter.source_topic}|{letter.source_partition}"
            if letter.source_offset <= seen.get(where, -1):
                continue  # written again after a restore: already counted
            seen[where] = letter.source_offset
        label = version_label(letter.pipeline, letter.version)
        by_version[label] = by_version.get(label, 0) + 1
        reasons = by_reason.setdefault(label, {})
        reasons[letter.reason] = reasons.get(letter.reason, 0) + 1
        latest.append(sample(letter))
    return {
        "next": {**tally["next"], **{str(p): o for p, o in next_offsets.items()}},
        "seen": seen,
        "by_version": by_version,
        "by_reason": by_reason,
        "written": written,
        "latest": latest[-LATEST:],
    }


def distinct(letters: Iterable[Letter]) -> list[Letter]:
    """Each broken input record's first letter per version, in the order given."""
    found: dict[tuple[str, int, str, int, int], Letter] = {}
    for letter in letters:
        found.setdefault(letter.source, letter)
    return list(found.values())


def read_new_letters(
    kafka: KafkaResource, topic: str, tally: dict[str, Any], *, max_records: int
) -> tuple[list[Letter], dict[int, int]]:
    """Up to `max_records` letters written since the tally's offsets (from the earliest
    held at first), and the offsets to go on from."""
    start = {int(p): int(o) for p, o in current_tally(tally)["next"].items()}
    records = kafka.read(topic, start, max_records=max_records)
    following = dict(start)
    for record in records:
        following[record.partition] = max(following.get(record.partition, 0), record.offset + 1)
    return [letter for r in records if (letter := parse_letter(r)) is not None], following


def letters_of(
    kafka: KafkaResource, topic: str, *, pipeline: str, version: int | None, max_records: int = 1_000_000
) -> list[Letter]:
    """Every letter of one pipeline (and version, when given) held in its topic, as written
    (repeats included: `distinct` keeps one per broken record)."""
    records = kafka.read(topic, {}, max_records=max_records)
    letters = [parse_letter(r) for r in records]
    return [
        letter
        for letter in letters
        if letter is not None
        and letter.pipeline == pipeline
        and (version is None or letter.version == version)
    ]
