"""The fingerprint: a stable hash of everything that changes a pipeline's output.

In: the normalised SQL, each source's topic, format, columns and event time, the
target's columns, types and key, and the start position. Out: owner, description,
tags, checks, catch-up policy and the serving alias, which change who reads the
table or how it is checked, not what it holds.
"""

from __future__ import annotations

import hashlib
import json

from kappa_orch.spec.model import LoadedPipeline
from kappa_orch.spec.sql import normalise

# bump when the hashed content changes meaning, or when the generated job changes what it
# computes, so that every pipeline gets a new version (a replay, checked, then swapped).
# 2: broken events go to dead letters instead of reaching the SQL with NULL columns (the
#    job's operators changed too: its old checkpoints cannot be resumed)
# 3: sources read bytes (invalid UTF-8 is dead-lettered), dead-lettered and implausible
#    events no longer move the watermark, dead letters are bounded in size
# 4: types are strict (a JSON string is not a number, nothing is rounded or replaced; a
#    column's `coerce` opts in), events are parsed once by the stack's KAPPA_PARSE function
FINGERPRINT_FORMAT = 4


def fingerprint(pipeline: LoadedPipeline) -> str:
    """The 16-hex-digit hash of everything that changes the pipeline's output (its Dagster code_version)."""
    spec = pipeline.spec
    material = {
        "format": FINGERPRINT_FORMAT,
        "sql": normalise(pipeline.sql_text),
        "sources": sorted(
            (
                {
                    "name": s.name,
                    "topic": s.topic,
                    "format": s.format,
                    "columns": [[c.name, c.type] + (["coerce"] if c.coerce else []) for c in s.columns],
                    "event_time": s.event_time.model_dump(by_alias=True) if s.event_time else None,
                }
                for s in spec.sources
            ),
            key=lambda s: str(s["name"]),
        ),
        "target": {
            "columns": [[c.name, c.type] for c in spec.target.columns],
            "primary_key": spec.target.primary_key,
        },
        "start": spec.start.position,
        "allowed_lateness": spec.allowed_lateness,
    }
    digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
    return digest[:16]
