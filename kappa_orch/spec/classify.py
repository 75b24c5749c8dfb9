"""Classifications follow the columns: a source column's tags (e.g. `pii`) pass to every
target column computed from it, through the SQL's column lineage (the computed
event-time column stands for the field it is computed from); a target column may add
tags of its own. An alias that exposes a tagged column must allow the tag
(`target.allow`), or the spec is refused.

Where the lineage of an output column cannot be computed (sqlglot cannot follow the
SQL), it inherits nothing: declare its tags on the target column."""

from __future__ import annotations

from kappa_orch.spec.model import PipelineSpec
from kappa_orch.spec.sql import column_lineage


def column_tags(spec: PipelineSpec, sql_text: str) -> dict[str, list[str]]:
    """Per target column, its tags: its own and those of every source column it is
    computed from (pure; sorted)."""
    tagged: dict[tuple[str, str], set[str]] = {}
    for source in spec.sources:
        for column in source.columns:
            tagged[(source.name, column.name)] = set(column.tags)
        if source.event_time is not None:
            from_tags = tagged.get((source.name, source.event_time.from_column), set())
            tagged[(source.name, source.event_time.column)] = set(from_tags)
    if not any(tagged.values()) and not any(c.tags for c in spec.target.columns):
        return {c.name: [] for c in spec.target.columns}
    deps = column_lineage(
        sql_text, {s.name: s.sql_columns() for s in spec.sources}, [c.name for c in spec.target.columns]
    )
    return {
        c.name: sorted(set(c.tags).union(*(tagged.get(dep, set()) for dep in deps.get(c.name, []))))
        for c in spec.target.columns
    }


def exposure_problems(spec: PipelineSpec, tags: dict[str, list[str]]) -> list[str]:
    """Each target column whose tags the alias does not allow (pure)."""
    allowed = set(spec.target.allow)
    return [
        f"target column {name!r} carries {sorted(set(found) - allowed)} (from its sources' columns or its "
        f"own tags) and the alias {spec.target.alias} would expose it"
        for name, found in tags.items()
        if set(found) - allowed
    ]
