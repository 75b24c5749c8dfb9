"""The dead-letter topics as observed assets: each tick the stream observer reads the
letters written since its last tick (bounded), and reports per version the distinct
broken input records, in all and by reason (plotted over time), and the latest letters
as a table. Letters a restored job wrote again are not counted twice (dead_letters)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from dagster import AssetObservation, MetadataValue

from kappa_orch.dagster.answers import StreamAnswers
from kappa_orch.dagster.translator import DEFAULT_TRANSLATOR, KappaTranslator
from kappa_orch.errors import KappaError, ServiceUnavailable
from kappa_orch.lifecycle.dead_letters import add_letters, current_tally, read_new_letters
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.spec.model import LoadedPipeline

READ_PER_TICK = 5_000  # letters read per topic and tick (a backlog is read over several)


def letter_topics(pipelines: Sequence[LoadedPipeline]) -> list[str]:
    """The dead-letter topics of these pipelines that are not also a source."""
    sources = {s.topic for p in pipelines for s in p.spec.sources}
    return sorted({p.spec.dead_letter_topic for p in pipelines} - sources)


def _letters_table(latest: list[dict[str, Any]]) -> str:
    rows = ["| version | source | reason | payload |", "|---|---|---|---|"]
    for letter in reversed(latest):
        source = f"{letter['source_topic']}[{letter['source_partition']}]@{letter['source_offset']}"
        payload = (letter["payload"] or "").replace("|", "\\|").replace("\n", " ")
        rows.append(
            f"| {letter['pipeline']} v{letter['version']} | {source} | {letter['reason']} | `{payload}` |"
        )
    return "\n".join(rows)


def letter_observation(
    topic: str, tally: dict[str, Any], translator: KappaTranslator = DEFAULT_TRANSLATOR
) -> AssetObservation:
    """The dead-letter topic's tally as an observation (pure): per version the distinct
    broken input records, `broken_records/<pipeline vN>` and by reason
    `broken_records/<pipeline vN>/<reason>`; `letters_written` (every letter, repeats
    after a restore and all versions included); the latest letters as text."""
    metadata: dict[str, Any] = {"letters_written": tally["written"]}
    for version, count in sorted(tally["by_version"].items()):
        metadata[f"broken_records/{version}"] = count
        for reason, by_reason in sorted(tally["by_reason"].get(version, {}).items()):
            metadata[f"broken_records/{version}/{reason}"] = by_reason
    if tally["latest"]:
        metadata["latest_letters"] = MetadataValue.md(_letters_table(tally["latest"]))
    return AssetObservation(asset_key=translator.key("topic", topic=topic), metadata=metadata)


def observe_letters(
    topics: Sequence[str],
    tallies: dict[str, Any],
    *,
    kafka: KafkaResource,
    answers: StreamAnswers,
    deadline: float,
    translator: KappaTranslator = DEFAULT_TRANSLATOR,
) -> tuple[list[AssetObservation], dict[str, Any]]:
    """Read each topic's new letters (until the deadline) and observe its tally; the new
    tallies are returned for the cursor. A topic not created yet is skipped."""
    observations, kept = [], dict(tallies)
    for topic in topics:
        if time.monotonic() > deadline or "kafka" in answers.outages:
            break
        tally = current_tally(tallies.get(topic))
        try:
            letters, following = read_new_letters(kafka, topic, tally, max_records=READ_PER_TICK)
        except ServiceUnavailable as exc:
            answers.outages["kafka"] = exc.problem
            break
        except KappaError:
            answers.missing_topics.add(topic)  # no deploy has created it yet, or it was deleted
            continue
        kept[topic] = add_letters(tally, letters, following)
        observations.append(letter_observation(topic, kept[topic], translator))
    return observations, kept
