"""A cheap start of a pipeline without state is checked against the log before its job
starts (issue 26, point 4), at scale: 200,000 authorizations over three days in three
skewed partitions, broken and wrong-clock events mixed in, copied one row per event.

found (review): on a quiet log nothing verified the derived rows against the log. A
change the plan wrongly took to be a plain copy (here: a renamed column claimed to copy
another live column) was copied wrongly at the fence and derive-parity, which puts the
live table through the same derivation, found it equal: the alias would have served wrong
values. The slice check replays the newest records before the fence through the
candidate's own SQL, finds the difference and the candidate replays; an honest change
passes the slice check and starts cheaply.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.lifecycle import cheap
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.spec.model import LoadedPipeline
from kappa_orch.stack.config import StackConfig
from tests.integration.cheap_changes import cheap_log, produce_half
from tests.integration.platform import Platform, isolated_platform, run_reprocess
from tests.integration.served import versions

pytestmark = pytest.mark.integration

SQL = "SELECT auth_id, account, amount_cents, status\nFROM authorizations\n"


def write_auth_copy(platform: Platform) -> LoadedPipeline:
    """A per-event map over the platform's authorizations (daily_spend's source)."""
    base = yaml.safe_load((platform.specs / "daily_spend.yaml").read_text())
    raw = {
        "name": "auth_copy",
        "owner": "payments-data@example.com",
        "sources": base["sources"],
        "dead_letters": {"topic": platform.dead_letter_topic("auth_copy")},
        "sql": "auth_copy.sql",
        "target": {
            "alias": "analytics.auth_copy",
            "allow": ["pii"],
            "primary_key": ["auth_id"],
            "columns": [
                {"name": "auth_id", "type": "STRING"},
                {"name": "account", "type": "STRING"},
                {"name": "amount_cents", "type": "BIGINT"},
                {"name": "status", "type": "STRING"},
            ],
        },
        "catch_up": {"max_lag": 0, "stable_for": "2s"},
    }
    (platform.specs / "auth_copy.sql").write_text(SQL)
    (platform.specs / "auth_copy.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return platform.pipelines()["auth_copy"]


def edit(platform: Platform, old: str, new: str, columns: list[dict[str, str]]) -> LoadedPipeline:
    sql_file, spec_file = platform.specs / "auth_copy.sql", platform.specs / "auth_copy.yaml"
    sql_file.write_text(sql_file.read_text().replace(old, new))
    raw = yaml.safe_load(spec_file.read_text())
    raw["target"]["columns"] = columns
    spec_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    return platform.pipelines()["auth_copy"]


def served(platform: Platform, columns: str) -> set[tuple[Any, ...]]:
    with platform.warehouse.connect() as conn:
        return {tuple(r) for r in conn.execute(text(f"SELECT {columns} FROM analytics.auth_copy"))}


def wait_served(platform: Platform, columns: str, rows: set[tuple[Any, ...]], timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while (got := served(platform, columns)) != rows:
        assert time.monotonic() < deadline, f"{len(got)} rows served, {len(rows)} expected"
        time.sleep(2)


def own_reads(platform: Platform, version: int) -> int:
    with platform.warehouse.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT coalesce(sum(records), 0) FROM kappa_counts.input_counts "
                    "WHERE pipeline = 'auth_copy' AND version = :v"
                ),
                {"v": version},
            ).scalar_one()
        )


def test_the_derived_rows_are_checked_against_the_log(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path, monkeypatch: Any
) -> None:
    with isolated_platform(stack, kafka, flink, tmp_path, only=["daily_spend"]) as platform:
        log = cheap_log()
        valid = produce_half(kafka, platform, log, 0) + produce_half(kafka, platform, log, 1)
        oracle = {(a["auth_id"], a["account"], a["amount_cents"], a["status"]) for a in valid}
        assert run_reprocess(platform, write_auth_copy(platform), kafka, flink).success
        wait_served(platform, "auth_id, account, amount_cents, status", oracle)

        # a rename the plan wrongly takes to copy another live column
        classified = cheap.cheap_route

        def misclassified(*args: Any, **kwargs: Any) -> cheap.Route | None:
            route = classified(*args, **kwargs)
            assert route is not None and route.change.kind == "stateless_forward", route
            wrong = {**(route.change.derivation or {}), "account_id": "status"}
            return replace(route, change=replace(route.change, derivation=wrong))

        monkeypatch.setattr(cheap, "cheap_route", misclassified)
        renamed = [
            {"name": "auth_id", "type": "STRING"},
            {"name": "account_id", "type": "STRING"},
            {"name": "amount_cents", "type": "BIGINT"},
            {"name": "status", "type": "STRING"},
        ]
        pipeline = edit(platform, "account, amount_cents", "account AS account_id, amount_cents", renamed)
        assert run_reprocess(platform, pipeline, kafka, flink).success
        monkeypatch.undo()
        started = (versions(platform, "auth_copy")[2].definition or {})["cheap_start"]
        sliced = started["slice_check"]
        assert started["fell_back"].startswith("slice_check:") and not sliced["passed"], started
        assert sliced["differing"] == sliced["rows"] > 0 and sliced["missing"] == 0, sliced
        assert sliced["records"] == 20_000
        assert own_reads(platform, 2) == log.auth_log.total  # it replayed the log
        wait_served(platform, "auth_id, account_id, amount_cents, status", oracle)

        # an honest change computed by Flink passes the check and starts cheaply
        computed = [*renamed[:3], {"name": "amount_units", "type": "BIGINT"}, renamed[3]]
        units = "amount_cents, amount_cents / 100 AS amount_units, status"
        pipeline = edit(platform, "amount_cents, status", units, computed)
        assert run_reprocess(platform, pipeline, kafka, flink).success
        v3 = versions(platform, "auth_copy")[3]
        started = (v3.definition or {})["cheap_start"]
        assert "fell_back" not in started and started["slice_check"]["passed"], started
        assert started["slice_check"]["rows"] > 19_000, started  # the valid ones of 20,000
        parity = (v3.check_results or {})["derive_parity"]
        assert parity["passed"] and "before the fence, replayed, gave the same rows" in parity["summary"], (
            parity
        )
        assert own_reads(platform, 3) == 0  # nothing came after the fence: the job read nothing
        wait_served(
            platform,
            "auth_id, account_id, amount_cents, amount_units, status",
            {(i, a, c, c // 100, s) for i, a, c, s in oracle},
        )
