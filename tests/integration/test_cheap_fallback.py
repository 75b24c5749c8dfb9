"""A cheap start that cannot be verified replays instead (issue 26, point 4), at the scale
of test_cheap_changes: a fault injected into the fence's copy (one row lost) is caught by
derive_parity and the same version replays the log, exact; a run killed right after the
next fence is finished by a later reprocess, which replays (its carried counts forgotten);
then `reprocess --force` rebuilds the fingerprint it serves into a new version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.lifecycle import cheap, derive_parity
from kappa_orch.lifecycle.deploy import deploy
from kappa_orch.lifecycle.services import Services
from kappa_orch.registry import store as registry
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack.config import StackConfig
from tests.integration import scale
from tests.integration.cheap_changes import cheap_log, own_counts, produce_half, rename_spend, wait_serving
from tests.integration.platform import Platform, isolated_platform, run_reprocess
from tests.integration.served import cli, versions

pytestmark = pytest.mark.integration


def test_a_cheap_start_whose_copy_is_wrong_is_caught_and_replays(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path, monkeypatch: Any
) -> None:
    with isolated_platform(stack, kafka, flink, tmp_path, only=["daily_spend"]) as platform:
        log = cheap_log()
        lossy_fence(platform, log, kafka, flink, monkeypatch)
        held = sum(len(r) // 2 for r in log.auth_log.records.values())  # the first half
        a_forced_replay_rebuilds_the_live_fingerprint(platform, stack, held)


def lossy_fence(
    platform: Platform, log: scale.ScaleLog, kafka: KafkaResource, flink: FlinkResource, monkeypatch: Any
) -> None:
    first = produce_half(kafka, platform, log, 0)
    assert run_reprocess(platform, platform.pipelines()["daily_spend"], kafka, flink).success
    wait_serving(platform, scale.daily_spend(first))
    copy_rows = cheap._copy_rows

    def lossy_copy(*args: Any) -> int:
        """The fence's copy, losing one row (the fault a wrong fence would make)."""
        copied = copy_rows(*args)
        pipeline, (version, _) = args[0], args[3]  # (the candidate's version, its derivation)
        table = f"{pipeline.spec.target.schema_name}.{pipeline.spec.target.version_table(version)}"
        with platform.warehouse.begin() as conn:
            conn.execute(text(f"DELETE FROM {table} WHERE ctid = (SELECT min(ctid) FROM {table})"))
        return copied

    monkeypatch.setattr(cheap, "_copy_rows", lossy_copy)
    monkeypatch.setattr(derive_parity, "QUIET_WAIT_S", 15.0)  # a lost row does not come back
    assert run_reprocess(platform, rename_spend(platform), kafka, flink).success
    v2 = versions(platform, "daily_spend")[2]
    started = (v2.definition or {}).get("cheap_start") or {}
    assert "derive_parity" in str(started.get("fell_back")), started
    assert (v2.check_results or {})["derive_parity"]["passed"]  # the replay derived nothing
    wait_serving(platform, scale.daily_spend(first))
    assert own_counts(platform, 2) == sum(len(r) // 2 for r in log.auth_log.records.values())
    monkeypatch.undo()
    a_run_killed_after_the_fence_is_finished_by_a_replay(platform, kafka, flink, scale.daily_spend(first))


def a_run_killed_after_the_fence_is_finished_by_a_replay(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource, oracle: set[Any]
) -> None:
    """found (review): a run killed after the fence left the candidate deploying with
    counts carried to the fence; the next run replays it from the log's start, and the
    carried counts then counted the first span twice (input_balance failed)."""
    sql_file = platform.specs / "daily_spend.sql"
    sql_file.write_text(sql_file.read_text().replace("AS total_cents", "AS spend_total"))
    spec_file = platform.specs / "daily_spend.yaml"
    spec_file.write_text(spec_file.read_text().replace("total_cents", "spend_total"))
    renamed = platform.pipelines()["daily_spend"]

    def killed(*_: Any) -> None:
        raise KeyboardInterrupt("the run was killed before the candidate's job started")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cheap, "_restored", killed)
        with pytest.raises(KeyboardInterrupt):
            deploy(renamed, Services(kafka, flink, platform.warehouse), holds_claim=True)
    v3 = versions(platform, "daily_spend")[3]
    assert v3.state == registry.DEPLOYING and v3.flink_job_id is None
    with registry.session(platform.warehouse) as conn:
        assert registry.input_counts_of(conn, "daily_spend", 3)  # carried to the fence
    assert run_reprocess(platform, renamed, kafka, flink).success  # takes it over: a replay
    v3 = versions(platform, "daily_spend")[3]
    assert (v3.check_results or {})["input_balance"]["passed"], v3.check_results
    wait_serving(platform, oracle)


def a_forced_replay_rebuilds_the_live_fingerprint(platform: Platform, stack: StackConfig, held: int) -> None:
    """Issue 26, point 6 (29, point 4): `reprocess --force` replays the spec it serves into
    a new version through the gate and the swap, recorded with who asked and why."""
    before = versions(platform, "daily_spend")
    code, out = cli(platform, stack, "reprocess", "daily_spend", "--force", "--wait")
    assert code == 1 and "needs a reason" in out and "Traceback" not in out, out
    assert versions(platform, "daily_spend").keys() == before.keys()
    code, out = cli(
        platform, stack, "reprocess", "daily_spend", "--force", "--reason", "rebuilt on request", "--wait"
    )
    assert code == 0 and "Traceback" not in out, out
    new = max(versions(platform, "daily_spend"))
    row = versions(platform, "daily_spend")[new]
    assert new == max(before) + 1 and row.state == registry.LIVE
    assert (row.definition or {})["forced"]["reason"] == "rebuilt on request"
    assert "cheap_start" not in (row.definition or {})  # a full replay, nothing carried
    assert own_counts(platform, new) == held  # the whole log (its first half) was read
