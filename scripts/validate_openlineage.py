"""Validate OpenLineage events against the OpenLineage JSON schemas.

    .venv/bin/python scripts/validate_openlineage.py EVENTS.jsonl [...] --spec SPEC_DIR

EVENTS: files of one JSON event per line (the `file:` transport's output, or
`kappa-orch lineage --format openlineage`). SPEC_DIR: a folder holding the OpenLineage
specification's `OpenLineage.json` and `facets/*.json` (the `spec/` folder of the
OpenLineage repository at the release openlineage-python was generated from; no package
on PyPI or Maven Central ships these files, so bring them yourself). kappa_orch's own
facets are validated against docs/openlineage/*.json.

Each event is validated as a RunEvent or JobEvent, and each facet against the schema its
`_schemaURL` names (schemas are looked up by their `$id`, nothing is fetched). Prints
one line per problem and a summary; exits 1 when any event or facet is invalid or a
facet's schema is not found."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

DOCS = Path(__file__).resolve().parent.parent / "docs" / "openlineage"


def schema_registry(spec: Path) -> Registry:
    resources = []
    for path in [spec / "OpenLineage.json", *sorted((spec / "facets").glob("*.json")), *DOCS.glob("*.json")]:
        document = json.loads(path.read_text())
        resources.append((document["$id"], Resource.from_contents(document)))
    return Registry().with_resources(resources)


def _facets(event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = [(f"run.{k}", v) for k, v in ((event.get("run") or {}).get("facets") or {}).items()]
    found += [(f"job.{k}", v) for k, v in ((event.get("job") or {}).get("facets") or {}).items()]
    for side in ("inputs", "outputs"):
        for dataset in event.get(side) or []:
            for group in ("facets", "inputFacets", "outputFacets"):
                found += [(f"{dataset['name']}.{k}", v) for k, v in (dataset.get(group) or {}).items()]
    return found


def validate(event: dict[str, Any], registry: Registry) -> list[str]:
    """Every problem of one event (empty: valid)."""
    kind = "RunEvent" if "run" in event else "JobEvent"
    problems = []
    schema = {"$ref": f"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/{kind}"}
    for error in Draft202012Validator(schema, registry=registry).iter_errors(event):
        problems.append(f"{kind}: {error.json_path}: {error.message}")
    for where, facet in _facets(event):
        url = facet.get("_schemaURL", "")
        try:
            registry.get_or_retrieve(url.split("#")[0])
        except Exception:
            problems.append(f"{where}: no schema {url}")
            continue
        for error in Draft202012Validator({"$ref": url}, registry=registry).iter_errors(facet):
            problems.append(f"{where}: {error.json_path}: {error.message}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("events", nargs="+", type=Path)
    parser.add_argument("--spec", required=True, type=Path, help="folder with OpenLineage.json and facets/")
    args = parser.parse_args()
    if not (args.spec / "OpenLineage.json").is_file():
        print(f"{args.spec}/OpenLineage.json not found: point --spec at the specification's spec/ folder")
        return 2
    registry = schema_registry(args.spec)
    events = facets = bad = 0
    kinds: dict[str, int] = {}
    for path in args.events:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            event = json.loads(line)
            events += 1
            facets += len(_facets(event))
            name = f"{(event.get('job') or {}).get('name', '?')} {event.get('eventType', 'JOB')}"
            kinds[name.split(".")[-1]] = kinds.get(name.split(".")[-1], 0) + 1
            for problem in validate(event, registry):
                bad += 1
                print(f"{path}:{number} {name}: {problem}")
    print(f"{events} events, {facets} facets validated, {bad} problem(s); by job and type: {kinds}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
