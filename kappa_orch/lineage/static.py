"""The lineage graph as OpenLineage job events (`kappa-orch lineage --format
openlineage`), and the graph read back from events (what a consumer draws).

Each pipeline is told as jobs: `<pipeline>.stream` reads the source topics into the
version tables (`<table>__v*`, with column lineage) and writes the dead-letter topic;
`<pipeline>.swap` serves a version through the alias (a symlink to the version table
when the live version is known); `<pipeline>.backfill` reads the topics into the batch
table. Read back with `edges_of`, these events draw the edges of `lineage_graph` and of
the Dagster asset graph: a job's inputs flow into its first output, which flows into
its other outputs (the dead-letter topic is written by the version's job)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from openlineage.client.event_v2 import InputDataset, JobEvent
from openlineage.client.serde import Serde

from kappa_orch.lineage import events as ev
from kappa_orch.spec.model import LoadedPipeline

VERSION_TABLE = re.compile(r"__v(\d+|\*)$")


def graph_events(
    pipelines: Sequence[LoadedPipeline], names: ev.Names, served: Mapping[str, str] | None = None
) -> list[JobEvent]:
    """Job events describing these pipelines; `served`: pipeline -> the physical table its
    alias serves, when the registry told."""
    events = []
    for pipeline in pipelines:
        spec = pipeline.spec
        columns = ev.columns_of(pipeline)
        family = f"{spec.target.table_name}__v*"
        topics = ev.source_datasets(pipeline, names)
        versions = ev.version_dataset(pipeline, names, family, columns)
        stream = ev.job(names, pipeline, "stream", streaming=True)
        letters = ev.topic_output(names, spec.dead_letter_topic)
        events.append(_job_event(stream, topics, [versions, letters]))
        table = (served or {}).get(spec.name)
        source = ev.version_dataset(pipeline, names, table or family, columns, lineage=False)
        alias = ev.alias_dataset(pipeline, names, table, columns)
        swap = ev.job(names, pipeline, "swap")
        events.append(_job_event(swap, [InputDataset(namespace=source.namespace, name=source.name)], [alias]))
        if spec.batch is not None and spec.batch_table:
            batch = ev.version_dataset(pipeline, names, spec.batch_table, columns)
            events.append(_job_event(ev.job(names, pipeline, "backfill"), topics, [batch]))
    return events


def _job_event(job: Any, inputs: Sequence[Any], outputs: Sequence[Any]) -> JobEvent:
    return JobEvent(
        eventTime=ev.now(), producer=ev.PRODUCER, job=job, inputs=list(inputs), outputs=list(outputs)
    )


def as_json_lines(events: Iterable[Any]) -> str:
    return "\n".join(Serde.to_json(e) for e in events)


def edges_of(events: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """The dataset edges (namespace/name -> namespace/name) events draw: each job's inputs
    into its first output, that output into the others; a version table (`__vN`) stands
    for the pipeline's versions (`__v*`), and self-edges are left out."""

    def key(dataset: Mapping[str, Any]) -> str:
        return f"{dataset['namespace']}/{VERSION_TABLE.sub('__v*', dataset['name'])}"

    edges: set[tuple[str, str]] = set()
    for event in events:
        outputs = [key(o) for o in event.get("outputs") or []]
        if not outputs:
            continue
        first = outputs[0]
        edges.update((key(i), first) for i in event.get("inputs") or [])
        edges.update((first, other) for other in outputs[1:])
    return {(a, b) for a, b in edges if a != b}


def served_by(events: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """alias (namespace/name) -> the table its symlink names, after the last event that
    moved it (what a consumer resolves the alias to)."""
    served: dict[str, str] = {}
    for event in events:
        for output in event.get("outputs") or []:
            links = ((output.get("facets") or {}).get("symlinks") or {}).get("identifiers") or []
            for link in links:
                served[f"{output['namespace']}/{output['name']}"] = f"{link['namespace']}/{link['name']}"
    return served


def read_events(path: str) -> list[dict[str, Any]]:
    """The events a file transport wrote (one JSON document per line)."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
