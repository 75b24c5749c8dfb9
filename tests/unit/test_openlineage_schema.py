"""The check every integration test's OpenLineage events pass (tests/openlineage_events.py):
kappa_orch's events validate against the OpenLineage specification's JSON schemas, and a
deliberately broken event, facet or schema URL is caught, naming what is wrong."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from openlineage.client.serde import Serde

from kappa_orch.lineage.events import Names
from kappa_orch.lineage.static import graph_events
from kappa_orch.spec.load import load_pipelines
from scripts.validate_openlineage import schema_registry, validate
from tests.openlineage_events import EventFile, spec_folder

ASSETS = Path(__file__).resolve().parents[2] / "assets"
NAMES = Names.of(
    deployment="prod", bootstrap="broker-1:9092", warehouse_url="postgresql://k@db:5432/warehouse"
)
REGISTRY = schema_registry(spec_folder())


def _events() -> list[dict[str, Any]]:
    return [json.loads(Serde.to_json(e)) for e in graph_events(load_pipelines(ASSETS), NAMES)]


def _a_run_event() -> dict[str, Any]:
    job_event = _events()[0]
    return {
        **job_event,
        "eventType": "COMPLETE",
        "run": {"runId": "0b7c6f0e-1111-4222-8333-444455556666", "facets": {}},
    }


def test_kappa_orchs_events_are_valid() -> None:
    events = [*_events(), _a_run_event()]
    assert len(events) > 5
    assert [p for e in events for p in validate(e, REGISTRY)] == []


@pytest.mark.parametrize(
    ("breakage", "said"),
    [
        (lambda e: e.pop("eventTime"), "'eventTime' is a required property"),
        (lambda e: e["run"].update(runId=42), "42 is not of type 'string'"),
        (lambda e: e.update(eventType="FINISHED"), "eventType"),
        (lambda e: e["job"].pop("namespace"), "'namespace' is a required property"),
    ],
    ids=["no eventTime", "runId not a string", "unknown eventType", "job without namespace"],
)
def test_a_broken_run_event_is_caught(breakage: Any, said: str) -> None:
    event = _a_run_event()
    breakage(event)
    problems = validate(event, REGISTRY)
    assert problems and any(said in p for p in problems), problems


def test_a_broken_facet_or_an_unknown_schema_is_caught() -> None:
    event = next(e for e in _events() if any(d.get("facets", {}).get("schema") for d in e["outputs"]))
    broken = copy.deepcopy(event)
    [dataset] = [d for d in broken["outputs"] if d.get("facets", {}).get("schema")]
    dataset["facets"]["schema"]["fields"] = "amount_cents BIGINT"  # an array in the spec
    problems = validate(broken, REGISTRY)
    assert any("schema" in p and "is not of type 'array'" in p for p in problems), problems
    unknown = copy.deepcopy(event)
    [dataset] = [d for d in unknown["outputs"] if d.get("facets", {}).get("schema")]
    dataset["facets"]["schema"]["_schemaURL"] = "https://openlineage.io/spec/facets/9-9-9/Nope.json"
    assert any(
        "no schema https://openlineage.io/spec/facets/9-9-9/Nope.json" in p
        for p in validate(unknown, REGISTRY)
    )


def test_the_event_file_reads_each_event_once_and_names_the_broken_one(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    good, bad = _a_run_event(), _a_run_event()
    bad.pop("eventTime")
    events = EventFile(path, REGISTRY)
    events.skip_to_end()  # no file yet
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n" + json.dumps(good)[:40])
    count, problems = events.check_new()
    assert count == 2  # the half-written third line waits for its end
    assert len(problems) == 1 and "'eventTime' is a required property" in problems[0]
    assert problems[0].startswith(f"{good['job']['name']} COMPLETE: ")
    with path.open("a") as file:
        file.write(json.dumps(good)[40:] + "\n")
    assert events.check_new() == (1, [])
