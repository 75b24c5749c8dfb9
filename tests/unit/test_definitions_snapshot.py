"""A snapshot of the reference deployment's definitions: asset keys, deps, code
versions (fingerprints), groups, owners, checks, sensors, schedules and jobs.

A deliberate change regenerates it: KAPPA_UPDATE_SNAPSHOTS=1 pytest tests/unit.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = Path(__file__).parent / "snapshots" / "reference_definitions.json"


def describe() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    try:
        from definitions import defs
    finally:
        sys.path.remove(str(ROOT))
    graph = defs.resolve_asset_graph()
    assets = {}
    for spec in sorted(defs.resolve_all_asset_specs(), key=lambda s: s.key.to_user_string()):
        assets[spec.key.to_user_string()] = {
            "deps": sorted(d.asset_key.to_user_string() for d in spec.deps),
            "code_version": spec.code_version,
            "group": spec.group_name,
            "owners": list(spec.owners),
            "kinds": sorted(spec.kinds),
            "materializable": graph.get(spec.key).is_materializable,
        }
    return {
        "assets": assets,
        "checks": sorted(f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys),
        "sensors": sorted(s.name for s in defs.sensors or []),
        "schedules": sorted(s.name for s in defs.schedules or []),
        "jobs": sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")),
    }


def test_reference_definitions_match_the_snapshot() -> None:
    current = describe()
    if os.environ.get("KAPPA_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())
