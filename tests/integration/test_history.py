"""Every swap records its run, the deployment's git commit and who launched it, and
`kappa-orch history` shows them (found: first-deploy swaps had no run id, sha or user;
a CLI reprocess recorded no sha)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from dagster import AssetMaterialization, AssetObservation, DagsterInstance

from assets.sample_events import sample_events
from kappa_orch import alias_key
from kappa_orch.resources.flink import FlinkResource
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
    done = subprocess.run(
        [KAPPA, *args],
        env=cli_env(
            platform, stack, KAPPA_GIT_COMMIT=SHA, DAGSTER_HOME=str(platform.specs.parent / "dagster")
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


def test_every_swap_records_run_commit_and_user(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> None:
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
