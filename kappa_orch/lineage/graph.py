"""The lineage graph kappa_orch knows, for governance: source topics -> a pipeline's
versions -> its alias (and its dead-letter topic and batch table), with the columns,
the topic fields each is computed from, and their classifications. Datasets are named
as OpenLineage names them: Kafka topics `kafka://<bootstrap host:port>` + topic,
PostgreSQL tables `postgres://<host:port>` + `<database>.<schema>.<table>`.

`kappa-orch lineage` prints it as JSON or Graphviz dot; it draws the same edges as the
Dagster asset graph (a test holds them together)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy.engine import make_url

from kappa_orch.spec.classify import column_tags
from kappa_orch.spec.model import LoadedPipeline
from kappa_orch.spec.sql import column_lineage


@dataclass(frozen=True)
class Dataset:
    """One node: its OpenLineage namespace and name, its kind, and its columns (name ->
    tags) where kappa_orch knows them."""

    namespace: str
    name: str
    kind: str  # topic | dead_letters | versions | version | alias | batch
    columns: dict[str, list[str]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Edge:
    """Data flows from one dataset to another; `columns`: per target column, the source
    fields it is computed from (empty when not column-level)."""

    source: str
    target: str
    pipeline: str
    columns: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class LineageGraph:
    datasets: dict[str, Dataset] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def add(self, dataset: Dataset) -> str:
        self.datasets.setdefault(dataset.id, dataset)
        return dataset.id

    def as_json(self) -> dict[str, Any]:
        return {
            "datasets": [asdict(d) | {"id": d.id} for d in self.datasets.values()],
            "edges": [asdict(e) for e in self.edges],
        }


def kafka_namespace(bootstrap: str) -> str:
    """`kafka://host:port` of the first bootstrap server (OpenLineage naming)."""
    return f"kafka://{bootstrap.split(',')[0].strip()}"


def postgres_namespace(url: str) -> tuple[str, str]:
    """(`postgres://host:port`, database) of a SQLAlchemy URL, without the credentials."""
    parsed = make_url(url)
    return f"postgres://{parsed.host or 'localhost'}:{parsed.port or 5432}", str(parsed.database or "")


def lineage_graph(
    pipelines: Sequence[LoadedPipeline],
    *,
    bootstrap: str,
    warehouse_url: str,
    live: Mapping[str, int] | None = None,
) -> LineageGraph:
    """The graph of these pipelines (pure). With `live` (pipeline -> live version), the
    alias also points at the physical table it serves (`version`)."""
    graph = LineageGraph()
    kafka = kafka_namespace(bootstrap)
    postgres, database = postgres_namespace(warehouse_url)
    for pipeline in pipelines:
        spec = pipeline.spec
        tags = column_tags(spec, pipeline.sql_text)
        schema, table = spec.target.schema_name, spec.target.table_name
        versions = graph.add(Dataset(postgres, f"{database}.{schema}.{table}__v*", "versions", tags))
        alias = graph.add(Dataset(postgres, f"{database}.{schema}.{table}", "alias", tags))
        fields = field_lineage(pipeline)
        for source in spec.sources:
            topic = graph.add(
                Dataset(kafka, source.topic, "topic", {c.name: list(c.tags) for c in source.columns})
            )
            from_topic = {out: [f for s, f in deps if s == source.name] for out, deps in fields.items()}
            graph.edges.append(
                Edge(topic, versions, pipeline.name, {k: v for k, v in from_topic.items() if v})
            )
            if spec.batch is not None and spec.batch_table:
                batch = graph.add(Dataset(postgres, f"{database}.{schema}.{spec.batch_table}", "batch", tags))
                graph.edges.append(Edge(topic, batch, pipeline.name))
        graph.edges.append(Edge(versions, alias, pipeline.name, {c: [c] for c in tags}))
        letters = graph.add(Dataset(kafka, spec.dead_letter_topic, "dead_letters"))
        graph.edges.append(Edge(versions, letters, pipeline.name))
        if live and spec.name in live:
            served = graph.add(
                Dataset(postgres, f"{database}.{schema}.{table}__v{live[spec.name]}", "version", tags)
            )
            graph.edges.append(Edge(served, alias, pipeline.name, {c: [c] for c in tags}))
    return graph


def field_lineage(pipeline: LoadedPipeline) -> dict[str, list[tuple[str, str]]]:
    """Per target column, the (source, field) pairs it is computed from; the event-time
    column stands for the raw field it is computed from."""
    spec = pipeline.spec
    computed = {(s.name, s.event_time.column): s.event_time.from_column for s in spec.sources if s.event_time}
    deps = column_lineage(
        pipeline.sql_text,
        {s.name: s.sql_columns() for s in spec.sources},
        [c.name for c in spec.target.columns],
    )
    return {out: [(s, computed.get((s, f), f)) for s, f in pairs] for out, pairs in deps.items()}


def as_dot(graph: LineageGraph) -> str:
    """Graphviz dot: one node per dataset (its columns and tags), one arrow per edge."""
    shapes = {"topic": "cds", "dead_letters": "cds", "alias": "box3d"}
    lines = ["digraph kappa_lineage {", "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];']
    for dataset in graph.datasets.values():
        columns = "\\l".join(
            f"{c}{' [' + ', '.join(t) + ']' if t else ''}" for c, t in dataset.columns.items()
        )
        label = f"{dataset.name}\\n({dataset.kind})" + (f"\\n\\n{columns}\\l" if columns else "")
        lines.append(f'  "{dataset.id}" [label="{label}", shape={shapes.get(dataset.kind, "box")}];')
    for edge in graph.edges:
        lines.append(f'  "{edge.source}" -> "{edge.target}" [label="{edge.pipeline}"];')
    lines.append("}")
    return "\n".join(lines)


KIND_WORDS = {
    "topic": "topic",
    "dead_letters": "dead letters",
    "versions": "every version",
    "version": "live version",
    "alias": "alias readers query",
    "batch": "batch table",
}


def as_text(graph: LineageGraph) -> str:
    """A readable summary (the CLI's default), per pipeline: where its data flows, dataset
    by dataset, then each column of its table with the topic fields it is computed from
    and its classifications."""
    lines: list[str] = []
    for pipeline in dict.fromkeys(e.pipeline for e in graph.edges):
        edges = [e for e in graph.edges if e.pipeline == pipeline]
        lines.append(pipeline)
        for edge in edges:
            source, target = graph.datasets[edge.source], graph.datasets[edge.target]
            lines.append(
                f"  {source.name} ({KIND_WORDS[source.kind]}) -> {target.name} ({KIND_WORDS[target.kind]})"
            )
        into_versions = [e for e in edges if graph.datasets[e.target].kind == "versions"]
        table = graph.datasets[into_versions[0].target] if into_versions else None
        if table is not None and table.columns:
            lines.append("  columns:")
            width = max(len(c) for c in table.columns)
            for column, tags in table.columns.items():
                fields = [
                    f"{graph.datasets[e.source].name}.{f}"
                    for e in into_versions
                    for f in e.columns.get(column, [])
                ]
                origin = ", ".join(fields) or "no topic field (a count or a constant)"
                tagged = f"  [{', '.join(tags)}]" if tags else ""
                lines.append(f"    {column:<{width}} <- {origin}{tagged}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
