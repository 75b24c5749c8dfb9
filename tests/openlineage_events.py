"""OpenLineage events checked against the specification's JSON schemas.

The integration tests send every event they emit (their own process's and their
`kappa-orch` commands') to one file per worker, and check after each test that what it
added is valid (tests/integration/conftest.py). The schemas are the OpenLineage
specification's `spec/` folder, read in place: `KAPPA_OPENLINEAGE_SPEC`, else
`../shared/openlineage-spec` beside the project's root (no package ships them)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from referencing import Registry

from scripts.validate_openlineage import schema_registry, validate

ROOT = Path(__file__).resolve().parents[1]


def spec_folder() -> Path:
    """The folder holding OpenLineage.json and facets/, or an error that says where to put it."""
    given = os.environ.get("KAPPA_OPENLINEAGE_SPEC")
    folder = Path(given) if given else ROOT.parent / "shared" / "openlineage-spec"
    if not (folder / "OpenLineage.json").is_file():
        raise FileNotFoundError(
            f"the OpenLineage JSON schemas are not at {folder} (no OpenLineage.json): put the "
            "specification's spec/ folder there, or point KAPPA_OPENLINEAGE_SPEC at it"
        )
    return folder


class EventFile:
    """A file of OpenLineage events, one JSON event per line (the `file:` transport's),
    read on from where the last look ended."""

    def __init__(self, path: Path, registry: Registry) -> None:
        self.path, self.registry = path, registry
        self.offset = 0

    def skip_to_end(self) -> None:
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def check_new(self) -> tuple[int, list[str]]:
        """The events written since the last look: how many, and every problem of each."""
        if not self.path.exists():
            return 0, []
        with self.path.open("rb") as file:
            file.seek(self.offset)
            text = file.read().decode()
        complete = text[: text.rfind("\n") + 1]  # a line being written is read next time
        self.offset += len(complete.encode())
        events, problems = 0, []
        for line in complete.splitlines():
            if not line.strip():
                continue
            events += 1
            event = json.loads(line)
            name = f"{(event.get('job') or {}).get('name', '?')} {event.get('eventType', 'JOB')}"
            problems += [f"{name}: {problem}" for problem in validate(event, self.registry)]
        return events, problems


def event_file(path: Path) -> EventFile:
    return EventFile(path, schema_registry(spec_folder()))
