"""The lineage graph (issue 14, point 6): OpenLineage dataset names, columns with their
topic fields and classifications, the alias pointing at the version it serves, and the
same edges as the Dagster asset graph."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey

from kappa_orch import PlatformConfig, build_kappa_definitions
from kappa_orch.dagster.translator import DEFAULT_TRANSLATOR as T
from kappa_orch.lineage.graph import Dataset, LineageGraph, as_dot, as_text, lineage_graph, postgres_namespace
from kappa_orch.spec.load import load_pipelines

ASSETS = Path(__file__).resolve().parents[2] / "assets"
PIPELINES = load_pipelines(ASSETS)
URL = "postgresql+psycopg2://kappa:secret@db.internal:6543/warehouse"
GRAPH = lineage_graph(
    PIPELINES, bootstrap="broker-1:9092,broker-2:9092", warehouse_url=URL, live={"daily_spend": 2}
)


def test_datasets_are_named_as_openlineage_names_them_without_credentials() -> None:
    assert postgres_namespace(URL) == ("postgres://db.internal:6543", "warehouse")
    ids = set(GRAPH.datasets)
    assert "kafka://broker-1:9092/payments.authorizations" in ids
    assert "postgres://db.internal:6543/warehouse.analytics.daily_spend" in ids
    assert "postgres://db.internal:6543/warehouse.analytics.daily_spend__v2" in ids  # what the alias serves
    assert "kafka://broker-1:9092/kappa.dead-letters.daily_spend" in ids
    assert "postgres://db.internal:6543/warehouse.analytics.daily_spend_daily" in ids
    assert "secret" not in json.dumps(GRAPH.as_json())


def test_columns_carry_their_topic_fields_and_classifications() -> None:
    alias = GRAPH.datasets["postgres://db.internal:6543/warehouse.analytics.daily_spend"]
    assert alias.columns["account"] == ["pii"] and alias.columns["spend_cents"] == []
    [edge] = [
        e
        for e in GRAPH.edges
        if e.target.endswith("warehouse.analytics.daily_spend__v*")
        and e.source.endswith("payments.authorizations")
    ]
    assert edge.columns["spend_cents"] == ["amount_cents"]
    assert edge.columns["spend_day"] == ["ts"]  # the event-time column stands for its field
    assert "authorizations" not in edge.columns  # COUNT(*) reads no field


def _key(dataset: Dataset, pipelines: dict) -> AssetKey:
    if dataset.kind in ("topic", "dead_letters"):
        return T.topic_key(dataset.name)
    spec = next(
        p.spec for p in pipelines.values() if dataset.name.split(".", 1)[1].startswith(p.spec.target.alias)
    )
    return {"versions": T.version_key, "alias": T.alias_key, "batch": T.batch_key}[dataset.kind](spec)


def test_the_graph_draws_the_edges_of_the_dagster_asset_graph(tmp_path: Path) -> None:
    config = PlatformConfig(kafka_bootstrap="broker-1:9092", warehouse_url=URL)
    asset_graph = build_kappa_definitions(ASSETS, config=config).resolve_asset_graph()
    pipelines = {p.name: p for p in PIPELINES}
    graph = lineage_graph(PIPELINES, bootstrap="broker-1:9092", warehouse_url=URL)
    edges = {
        (_key(graph.datasets[e.source], pipelines), _key(graph.datasets[e.target], pipelines))
        for e in graph.edges
    }
    dagster = {
        (parent, key)
        for key in asset_graph.get_all_asset_keys()
        for parent in asset_graph.get(key).parent_keys
    }
    assert edges == dagster


@pytest.mark.slow
def test_dot_and_the_cli_without_a_registry(tmp_path: Path) -> None:
    dot = as_dot(GRAPH)
    assert dot.startswith("digraph kappa_lineage {") and "account [pii]" in dot
    env = {
        **os.environ,
        "KAPPA_SPECS": str(ASSETS),
        "KAPPA_WAREHOUSE_URL": "postgresql+psycopg2://k:k@127.0.0.1:9/w",
    }
    cli = str(Path(sys.executable).parent / "kappa-orch")
    done = subprocess.run(
        [cli, "lineage", "daily_spend", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "live versions not shown" in done.stderr
    kinds = sorted(d["kind"] for d in json.loads(done.stdout)["datasets"])
    assert kinds == ["alias", "batch", "dead_letters", "topic", "versions"]
    # by default a readable summary (issue 29, point 10)
    done = subprocess.run(
        [cli, "lineage", "daily_spend"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout == as_text(lineage_of(["daily_spend"])), done.stderr


def lineage_of(names: list[str]) -> LineageGraph:
    pipelines = [p for p in load_pipelines(ASSETS) if p.name in names]
    return lineage_graph(
        pipelines, bootstrap="127.0.0.1:9092", warehouse_url="postgresql://k:k@127.0.0.1:9/w"
    )


def test_the_readable_summary_says_where_each_column_comes_from() -> None:
    text = as_text(lineage_of(["daily_spend", "auth_settlement"]))
    daily = text.split("\n\n")[1]  # pipelines in the order of their specs
    assert daily.splitlines()[0] == "daily_spend"
    assert "  payments.authorizations (topic) -> w.analytics.daily_spend__v* (every version)" in daily
    assert (
        "w.analytics.daily_spend__v* (every version) -> w.analytics.daily_spend (alias readers query)"
        in daily
    )
    assert "-> kappa.dead-letters.daily_spend (dead letters)" in daily
    assert "    account        <- payments.authorizations.account  [pii]" in daily
    assert "    spend_day      <- payments.authorizations.ts" in daily
    assert "    authorizations <- no topic field (a count or a constant)" in daily
    joined = text.split("\n\n")[0]
    assert "settled_cents    <- payments.settlements.settled_cents" in joined  # the join's second topic
