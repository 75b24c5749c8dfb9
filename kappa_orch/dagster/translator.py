"""How pipeline specs become Dagster assets: keys, groups, owners, tags, descriptions,
kinds and metadata.

As `DagsterSlingTranslator` and `DagsterDbtTranslator` do for their tools, one method,
`get_asset_spec`, returns each asset's `AssetSpec`; override it (or one of the smaller
methods its default reads) and the change holds everywhere the asset is named (assets,
checks, sensors' run requests, observations, column lineage).

    class MyTranslator(KappaTranslator):
        def get_asset_spec(self, asset):
            default = super().get_asset_spec(asset)
            if asset.role == "alias":
                return default.replace_attributes(key=AssetKey(["serving", asset.spec.target.table_name]))
            return default
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from dagster import AssetKey, AssetSpec

from kappa_orch.spec.model import PipelineSpec

_KEY_PART = re.compile(r"[^A-Za-z0-9_]")
_TAG_VALUE = re.compile(r"^[A-Za-z0-9_.-]{0,63}$")

_VERSIONS_NOTE = " (versioned tables: one per fingerprint; materialising deploys, awaits catch-up and checks)"
AssetRole = Literal["versions", "alias", "batch"]  # a pipeline's own assets
Role = Literal["topic", "dead_letters", "versions", "alias", "batch"]
KINDS: dict[str, set[str]] = {
    "topic": {"kafka"},
    "dead_letters": {"kafka", "dead_letters"},
    "versions": {"flink", "postgres"},
    "alias": {"postgres"},
    "batch": {"flink", "postgres"},
}


@dataclass(frozen=True)
class KappaAsset:
    """One asset kappa_orch makes: its role, the pipeline spec it belongs to (for a
    dead-letter topic, the first pipeline writing it) and, for a topic, its name."""

    role: Role
    spec: PipelineSpec | None = None
    topic: str | None = None


class KappaTranslator:
    """The default naming: ``kafka/<topic parts>``, ``<schema>/<table>__versions``,
    ``<schema>/<table>`` (the alias) and ``<schema>/<batch table>``; one group per
    pipeline, source topics in the ``sources`` group and dead-letter topics in
    ``dead_letters``; the spec's owner and tags."""

    def get_asset_spec(self, asset: KappaAsset) -> AssetSpec:
        """The asset's key, group, owners, tags, description, kinds and metadata (kappa_orch
        adds its own metadata, dependencies and checks). Override to change any of them
        everywhere, e.g. ``super().get_asset_spec(asset).replace_attributes(...)``."""
        if asset.role in ("topic", "dead_letters"):
            topic = asset.topic or ""
            description = self.topic_description(topic)
            if asset.role == "dead_letters":
                description = (
                    "Dead letters: the events the pipeline's jobs could not use, each with its reason, "
                    "source topic, partition, offset and version. Read them with `kappa-orch dead-letters "
                    f"{asset.spec.name if asset.spec else ''}`."
                )
            return AssetSpec(
                key=self.topic_key(topic),
                description=description,
                group_name=(
                    self.dead_letter_group_name(topic)
                    if asset.role == "dead_letters"
                    else self.topic_group_name(topic)
                ),
                kinds=KINDS[asset.role],
            )
        spec = asset.spec
        assert spec is not None, f"a {asset.role} asset belongs to a pipeline spec"
        keys = {"versions": self.version_key, "alias": self.alias_key, "batch": self.batch_key}
        role: AssetRole = asset.role  # type: ignore[assignment]
        return AssetSpec(
            key=keys[role](spec),
            group_name=self.group_name(spec),
            owners=self.owners(spec),
            tags=self.tags(spec),
            description=self.description(spec, role),
            kinds=KINDS[role],
        )

    def key(self, role: Role, spec: PipelineSpec | None = None, *, topic: str | None = None) -> AssetKey:
        """The key `get_asset_spec` gives an asset: what every check, sensor, observation and
        lineage entry names it by."""
        return self.get_asset_spec(KappaAsset(role, spec, topic)).key

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
        """The asset group of a source topic (the log pipelines read)."""
        return "sources"

    def dead_letter_group_name(self, topic: str) -> str:
        """The asset group of a dead-letter topic: apart from the sources, so that the
        collapsed graph reads sources -> pipelines -> dead letters, never a pipeline
        feeding the sources' group."""
        return "dead_letters"

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
