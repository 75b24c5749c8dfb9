"""Lineage for governance: the graph from source topics through a pipeline's columns to
its alias (`graph`), OpenLineage events built from it (`events`, pure), what each
operation tells (`ops`), the graph as static job events (`static`), and the transports
that send events without holding up a run (`emit`).

May import: `spec`, `errors`, `progress`.
"""
