"""Every swap records its run, the deployment's git commit and who launched it, and
`kappa-orch history` shows them (found: first-deploy swaps had no run id, sha or user;
a CLI reprocess recorded no sha). The same first deploy, reprocess (as a Dagster run)
and rollback are told to OpenLineage (a file transport): the events rebuild the graph
the Dagster asset graph draws, and the alias's symlink follows every swap."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetMaterialization, AssetObservation, DagsterInstance
from sqlalchemy import text

from assets.sample_events import sample_events
from kappa_orch import alias_key
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.lineage import events as lineage_events
from kappa_orch.lineage.graph import lineage_graph
from kappa_orch.lineage.static import edges_of, read_events, served_by
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack.config import StackConfig
from tests.integration.platform import (
    KAPPA,
    Platform,
    cli_env,
    count_declined_too,
    isolated_platform,
    observe_once,
    produce_authorizations,
)

pytestmark = pytest.mark.integration
SHA = "0123456789abcdef0123456789abcdef01234567"


def cli(platform: Platform, stack: StackConfig, *args: str) -> str:
    events = platform.specs.parent / "openlineage" / "events.jsonl"
    done = subprocess.run(
        [KAPPA, *args],
        env=cli_env(
            platform,
            stack,
            KAPPA_GIT_COMMIT=SHA,
            DAGSTER_HOME=str(platform.specs.parent / "dagster"),
            KAPPA_OPENLINEAGE=f"file:{events}",
        ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def alias_observations(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource, cursor: str | None
) -> tuple[list[AssetObservation | AssetMaterialization], str | None]:
    events, cursor = observe_once(platform, kafka, flink, cursor)
    return [e for e in events if isinstance(e, AssetObservation | AssetMaterialization)], cursor


@dataclass
class Flow:
    platform: Platform
    planned: dict[str, Any]
    swaps: list[dict[str, Any]]
    table: str
    observed: list[AssetObservation | AssetMaterialization]
    again: list[AssetObservation | AssetMaterialization]
    events: list[dict[str, Any]]
    dagster_home: Path
    bootstrap: str
    later: list[dict[str, Any]]  # the swaps after a forced replay and a repaired alias


@pytest.fixture(scope="module")
def flow(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flow]:
    """A first deploy, a reprocess through `plan --apply` (a Dagster run) and a rollback."""
    tmp_path = tmp_path_factory.mktemp("history")
    with isolated_platform(stack, kafka, flink, tmp_path, only=["daily_spend"]) as platform:
        produce_authorizations(platform, kafka, sample_events(5_000).authorizations, event_timestamps=True)
        cli(platform, stack, "deploy", "daily_spend")  # a first deploy: gated, then the alias
        count_declined_too(platform)
        [planned] = json.loads(cli(platform, stack, "plan", "--json"))
        cli(platform, stack, "plan", "--apply")  # the reprocess, as a Dagster run
        cli(platform, stack, "rollback", "daily_spend")
        swaps = json.loads(cli(platform, stack, "history", "daily_spend", "--json"))
        table = cli(platform, stack, "history", "daily_spend")
        observed, cursor = alias_observations(platform, kafka, flink, None)
        again, _ = alias_observations(platform, kafka, flink, cursor)
        events = read_events(str(platform.specs.parent / "openlineage" / "events.jsonl"))
        home, bootstrap = tmp_path / "dagster", stack.kafka_bootstrap
        cli(
            platform, stack, "reprocess", "daily_spend", "--wait", "--force", "--reason", "rebuilt on request"
        )
        with platform.warehouse.begin() as conn:  # a lost alias: the repair rebuilds it (a swap)
            conn.execute(text(f"DROP VIEW {platform.pipelines()['daily_spend'].spec.target.alias}"))
        cli(platform, stack, "repair", "daily_spend")
        later = json.loads(cli(platform, stack, "history", "daily_spend", "--json"))
        yield Flow(platform, planned, swaps, table, observed, again, events, home, bootstrap, later)


def test_every_swap_records_run_commit_and_user(flow: Flow) -> None:
    platform, planned, swaps, table = flow.platform, flow.planned, flow.swaps, flow.table
    observed, again, tmp_path = flow.observed, flow.again, flow.dagster_home.parent
    # the plan showed the change and its cost before it was applied
    assert planned["action"] == "reprocess"
    assert "-WHERE status = 'approved'" in planned["replay"]["sql_diff"]
    assert "+WHERE status IN ('approved', 'declined')" in planned["replay"]["sql_diff"]
    assert planned["replay"]["records_to_read"] == 5_000
    assert planned["replay"]["events_per_s"] > 0 and planned["replay"]["estimate_s"] > 0
    # the retention verdict travels with it: the topic it reads, what it keeps and needs
    [topic] = planned["retention"]["topics"]
    assert planned["retention"]["verdict"] == ("too short" if topic["problems"] else "ok")
    assert topic["topic"].endswith("payments.authorizations") and topic["needed_ms"] > 0
    assert [(s["from_version"], s["to_version"], s["reason"]) for s in swaps] == [
        (None, 1, "first deploy"),
        (1, 2, "reprocess"),
        (2, 1, "rollback"),
    ]
    for swap in swaps:
        assert swap["git_commit"] == SHA
        assert swap["swapped_by"]
        assert swap["run_id"]
    assert swaps[0]["run_id"].startswith("cli-deploy-")
    assert len(swaps[1]["run_id"]) == 36  # the Dagster run of the reprocess ...
    # ... recorded in the instance the UI reads (found: CLI runs went to an ephemeral one)
    instance = DagsterInstance.from_config(str(tmp_path / "dagster"))
    run = instance.get_run_by_id(swaps[1]["run_id"])
    assert run is not None and run.tags["kappa/pipeline"] == "daily_spend"
    assert run.job_name == "kappa_reprocess"  # named after what it does (issue 29, point 7)
    assert swaps[2]["run_id"].startswith("cli-rollback-")
    assert table.splitlines()[0].startswith("swapped at (UTC)")
    # the alias page tells the truth after a CLI rollback: the swap no run reported is
    # reported by the observer as the alias's materialization (what its page shows first)
    [alias] = [o for o in observed if o.asset_key == alias_key(platform.pipelines()["daily_spend"].spec)]
    assert isinstance(alias, AssetMaterialization)
    assert alias.metadata["live_version"].value == 1
    assert alias.metadata["physical_table"].value.endswith("daily_spend__v1")
    assert "v2 -> v1 (rollback" in alias.metadata["last_swap"].value
    history = alias.metadata["swap_history"].value
    assert history.count("\n| ") == 3 and "first deploy" in history
    assert not [o for o in again if o.asset_key == alias.asset_key]  # reported once, until it changes
    assert "first deploy" in table and "rollback" in table and SHA[:8] in table


def _run_id(text: str) -> str:
    return lineage_events.run_uuid(text)


def test_a_forced_replay_and_a_repair_record_their_provenance_too(flow: Flow) -> None:
    """Issue 29, point 9: every swap (here the forced replay's and the repair's, which
    rebuilt a lost alias) records its run, commit and who; found: the repair's swap
    recorded neither run nor commit."""
    later = flow.later[len(flow.swaps) :]
    assert [(s["from_version"], s["to_version"], s["reason"]) for s in later] == [
        (1, 3, "reprocess"),  # the forced replay (its --reason is kept with the version)
        (3, 3, "alias rebuilt"),  # by the repair
    ], later
    for swap in later:
        assert swap["git_commit"] == SHA and swap["swapped_by"], swap
    assert len(later[0]["run_id"]) == 36 or later[0]["run_id"].startswith("cli-"), later[0]
    assert later[1]["run_id"].startswith("cli-repair-"), later[1]


def test_openlineage_follows_the_swaps_and_draws_the_asset_graph(flow: Flow) -> None:
    events, swaps = flow.events, flow.swaps
    pipeline = flow.platform.pipelines()["daily_spend"]
    spec = pipeline.spec
    done = [(e["job"]["name"], e["eventType"]) for e in events]
    # a START and an end per run; the catch-up told as RUNNING events of the Flink job
    assert done.count(("daily_spend.stream", "START")) == 2  # v1, then v2
    assert done.count(("daily_spend.reprocess", "START")) == 2
    assert done.count(("daily_spend.reprocess", "COMPLETE")) == 2
    assert ("daily_spend.stream", "RUNNING") in done
    moves = [e for e in events if e["job"]["name"] in ("daily_spend.swap", "daily_spend.rollback")]
    assert [(e["job"]["name"], e["eventType"]) for e in moves] == [
        ("daily_spend.swap", "START"),
        ("daily_spend.swap", "COMPLETE"),
        ("daily_spend.swap", "START"),
        ("daily_spend.swap", "COMPLETE"),
        ("daily_spend.rollback", "START"),
        ("daily_spend.rollback", "COMPLETE"),
    ]
    # the alias's symlink names the table each swap made it serve, as the registry recorded
    alias = next(o for o in moves[1]["outputs"])
    alias_id = f"{alias['namespace']}/{alias['name']}"
    assert alias["name"].endswith(f".{spec.target.schema_name}.{spec.target.table_name}")
    served = [served_by([e])[alias_id].rsplit("__v", 1)[1] for e in moves if e["eventType"] == "COMPLETE"]
    assert served == [str(s["to_version"]) for s in swaps] == ["1", "2", "1"]
    assert served_by(events)[alias_id].endswith(f"{spec.target.table_name}__v1")  # after the rollback
    # the Flink job of v2 is a child of the Dagster run that reprocessed (and v1 of the CLI deploy)
    starts = [e for e in events if (e["job"]["name"], e["eventType"]) == ("daily_spend.stream", "START")]
    assert starts[1]["run"]["facets"]["parent"]["run"]["runId"] == _run_id(swaps[1]["run_id"])
    assert starts[1]["run"]["facets"]["parent"]["job"]["name"].startswith("dagster.")
    assert starts[0]["run"]["facets"]["parent"]["job"]["name"] == "cli.kappa-orch.deploy"
    # columns, their lineage and classifications travel with the version table
    version = starts[1]["outputs"][0]
    fields = version["facets"]["columnLineage"]["fields"]
    assert [f["field"] for f in fields["spend_cents"]["inputFields"]] == ["amount_cents"]
    assert {"key": "pii", "field": "account"}.items() <= version["facets"]["tags"]["tags"][0].items()
    assert starts[1]["job"]["facets"]["kappa_version"]["version"] == 2
    assert "declined" in starts[1]["job"]["facets"]["sourceCode"]["sourceCode"]
    # the gate's checks as assertions on the checked version table
    reprocessed = ("daily_spend.reprocess", "COMPLETE")
    gated = [e for e in events if (e["job"]["name"], e["eventType"]) == reprocessed][1]
    [checked] = [i for i in gated["inputs"] if "dataQualityAssertions" in (i.get("inputFacets") or {})]
    assertions = checked["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert assertions and all(a["success"] for a in assertions)
    # the events rebuild the graph lineage_graph and the Dagster asset graph draw
    graph = lineage_graph([pipeline], bootstrap=flow.bootstrap, warehouse_url=flow.platform.warehouse_url)
    drawn = {(e.source, e.target) for e in graph.edges if not e.target.endswith("_daily")}
    assert edges_of(events) == drawn
