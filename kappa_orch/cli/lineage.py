"""`kappa-orch lineage [<pipeline>] [--format text|json|dot|openlineage]`."""

from __future__ import annotations

import json
from typing import Any

import click

from kappa_orch.cli import main
from kappa_orch.cli.options import load_specs, pick, platform_of, platform_options
from kappa_orch.errors import ServiceUnavailable


@main.command(name="lineage")
@click.argument("pipeline", required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "dot", "openlineage"]),
    default="text",
    show_default=True,
)
@platform_options
def lineage_command(pipeline: str | None, fmt: str, **options: Any) -> None:
    """The lineage graph: source topics -> versions -> alias (and dead-letter topic and
    batch table), with columns, the topic fields each is computed from, and their
    classifications; datasets named as OpenLineage names them. The alias points at the
    version it serves when the registry answers. By default a readable summary; `--format
    json` the graph as JSON, `dot` for Graphviz; `--format openlineage`: the same graph as
    OpenLineage job events, one JSON document per line (what `lineage_emit` sends)."""
    from kappa_orch.lineage.events import Names
    from kappa_orch.lineage.graph import as_dot, as_text, lineage_graph
    from kappa_orch.lineage.static import as_json_lines, graph_events
    from kappa_orch.registry import store as registry

    platform = platform_of(options)
    pipelines = load_specs(platform.specs)
    if pipeline is not None:
        pipelines = [pick(pipelines, pipeline, platform.specs)]
    live = None
    served: dict[str, str] = {}
    warehouse = platform.resources()["warehouse"]
    try:
        with registry.session(warehouse) as conn:
            live = registry.live_versions(conn)
            for name, version in live.items():
                for row in registry.pipeline_versions(conn, name):
                    if row.version == version:
                        served[name] = row.physical_table
    except ServiceUnavailable as exc:
        click.secho(f"WARNING: live versions not shown ({exc.problem})", fg="yellow", err=True)
    finally:
        warehouse.dispose()
    if fmt == "openlineage":
        names = Names.of(
            deployment=platform.deployment,
            bootstrap=platform.kafka_bootstrap,
            warehouse_url=platform.warehouse_url,
        )
        click.echo(as_json_lines(graph_events(pipelines, names, served)))
        return
    graph = lineage_graph(
        pipelines, bootstrap=platform.kafka_bootstrap, warehouse_url=platform.warehouse_url, live=live
    )
    if fmt == "text":
        click.echo(as_text(graph), nl=False)
        return
    click.echo(json.dumps(graph.as_json(), indent=2) if fmt == "json" else as_dot(graph))
