"""How pipeline specs become Dagster asset keys, groups, owners, tags and descriptions.

As `DagsterSlingTranslator` and `DagsterDbtTranslator` do for their tools: subclass
`KappaTranslator` and override a method to change one decision everywhere it is used
(assets, checks, sensors' run requests, observations, column lineage).

    class MyTranslator(KappaTranslator):
        def alias_key(self, spec):
            return AssetKey(["serving", spec.target.table_name])
"""

from __future__ import annotations

import re
from typing import Literal

from dagster import AssetKey

from kappa_orch.spec.model import PipelineSpec

_KEY_PART = re.compile(r"[^A-Za-z0-9_]")
_TAG_VALUE = re.compile(r"^[A-Za-z0-9_.-]{0,63}$")

_VERSIONS_NOTE = " (versioned tables: one per fingerprint; materialising deploys, awaits catch-up and checks)"
AssetRole = Literal["versions", "alias", "batch"]


class KappaTranslator:
    """The default naming: ``kafka/<topic parts>``, ``<schema>/<table>__versions``,
    ``<schema>/<table>`` (the alias) and ``<schema>/<batch table>``; one group per
    pipeline, topics in the ``kafka`` group; the spec's owner and tags."""

    def topic_key(self, topic: str) -> AssetKey:
        """The external asset of a Kafka topic (shared by every pipeline that reads it)."""
        return AssetKey(["kafka", *(_KEY_PART.sub("_", part) for part in topic.split("."))])

    def version_key(self, spec: PipelineSpec) -> AssetKey:
        """The versioned table: materialising it deploys the current fingerprint."""
        return AssetKey([spec.target.schema_name, f"{spec.target.table_name}__versions"])

    def alias_key(self, spec: PipelineSpec) -> AssetKey:
        """The serving alias: materialising it is the swap."""
        return AssetKey([spec.target.schema_name, spec.target.table_name])

    def batch_key(self, spec: PipelineSpec) -> AssetKey:
        """The daily-partitioned batch table (pipelines with ``batch:`` only)."""
        return AssetKey([spec.target.schema_name, spec.batch_table or ""])

    def topic_group_name(self, topic: str) -> str:
        """The asset group of a topic."""
        return "kafka"

    def group_name(self, spec: PipelineSpec) -> str:
        """The asset group of a pipeline's assets."""
        return spec.name

    def owners(self, spec: PipelineSpec) -> list[str]:
        """Dagster owners: an e-mail as is, a team as ``team:<name>``."""
        owner = spec.owner.strip()
        return [owner if "@" in owner or owner.startswith("team:") else f"team:{_KEY_PART.sub('_', owner)}"]

    def tags(self, spec: PipelineSpec) -> dict[str, str]:
        """The spec's tags that Dagster accepts as tags (others stay in the spec)."""
        return {k: v for k, v in spec.tags.items() if _TAG_VALUE.match(k) and _TAG_VALUE.match(v)}

    def topic_description(self, topic: str) -> str:
        """The description of a topic's asset."""
        return f"Kafka topic {topic} (the log: source of truth)."

    def description(self, spec: PipelineSpec, role: AssetRole) -> str:
        """The description of one of a pipeline's assets."""
        base = spec.description or spec.name
        if role == "versions":
            return base + _VERSIONS_NOTE
        if role == "alias":
            return base + f" (serving alias {spec.target.alias}; materialising it is the swap)"
        day_column = spec.batch.day_column if spec.batch else ""
        return base + f" (batch: one partition per day of {day_column}, recomputed from the log)"


DEFAULT_TRANSLATOR = KappaTranslator()
