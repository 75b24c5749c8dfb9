"""A change the compiled plans prove safe starts from the live version's savepoint, not
from the log's start, and is verified before the swap (issue 26, points 3 and 4).

At scale: 200,000 authorizations over three days in three skewed partitions, broken and
wrong-clock events mixed in. The live version reads the first half of every partition;
the spec then renames a column (the plans say state-compatible: the aggregate's state
and the source offsets carry over, every column copies a live one); the second half is
produced after the swap. The served alias must equal the independent oracle over the
whole log, the candidate's own job must have read only what came after the fence, and
its gate must have checked it against the live version row for row. Before the second
half, a declared freshness restarts the live job from a savepoint (point 8). Then a change
that drops a column waits until exactly its plan id is approved (point 7); last, a column
computed from a live one and a HAVING clause are derived from the live rows by Flink
(point 3). A cheap start whose copy is wrong: test_cheap_fallback."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.registry import store as registry
from kappa_orch.registry.check_history import last_checks
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack.config import StackConfig
from tests.integration import scale
from tests.integration.cheap_changes import cheap_log, own_counts, produce_half, rename_spend, wait_serving
from tests.integration.platform import KAPPA, Platform, cli_env, isolated_platform, run_reprocess
from tests.integration.receivers import Receiver, receiving
from tests.integration.served import cli, versions

pytestmark = pytest.mark.integration


def test_a_renamed_column_starts_from_the_live_savepoint_and_is_exact(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> None:
    with isolated_platform(stack, kafka, flink, tmp_path, only=["daily_spend"]) as platform:
        renamed_at_scale(platform, cheap_log(), kafka, flink, stack)


def renamed_at_scale(
    platform: Platform, log: scale.ScaleLog, kafka: KafkaResource, flink: FlinkResource, stack: StackConfig
) -> None:
    first = produce_half(kafka, platform, log, 0)
    pipeline = platform.pipelines()["daily_spend"]
    assert run_reprocess(platform, pipeline, kafka, flink).success
    wait_serving(platform, scale.daily_spend(first))
    v1 = versions(platform, "daily_spend")[1]
    read_by_v1 = own_counts(platform, 1)

    renamed = rename_spend(platform)
    assert run_reprocess(platform, renamed, kafka, flink).success
    v2 = versions(platform, "daily_spend")[2]
    started = (v2.definition or {}).get("cheap_start")
    assert started and started["kind"] == "state_compatible" and not started.get("fell_back"), started
    assert started["derivation"]["total_cents"] == "spend_cents"
    gate = v2.check_results or {}
    assert gate["derive_parity"]["passed"], gate
    with registry.session(platform.warehouse) as conn:
        assert registry.live_versions(conn)["daily_spend"] == 2
        carried = registry.input_counts_of(conn, "daily_spend", 2)
    # the candidate's checks saw v1's counts carried to the fence: the whole first half
    assert (
        sum(c.records for c in carried)
        == read_by_v1
        == sum(len(r) // 2 for r in log.auth_log.records.values())
    )
    # v1 went on from the same savepoint (a rollback target that is not behind)
    v1_now = versions(platform, "daily_spend")[1]
    assert v1_now.state == registry.READY and v1_now.flink_job_id != v1.flink_job_id
    assert flink.job_state(v1_now.flink_job_id or "") == "RUNNING"

    restarted_with_freshness(platform, stack, flink)
    second = produce_half(kafka, platform, log, 1)
    wait_serving(platform, scale.daily_spend(first + second))
    # the candidate's own job read only what came after the fence: the second half
    read_by_v2 = own_counts(platform, 2)
    replay = log.auth_log.total
    assert read_by_v2 == replay - read_by_v1
    print(f"cheap start read {read_by_v2:,} of {replay:,} records ({read_by_v2 / replay:.0%} of a replay)")
    a_dropped_column_waits_for_approval(platform, stack, scale.daily_spend(first + second))
    computed_and_filtered_by_flink(platform, stack, scale.daily_spend(first + second))


def restarted_with_freshness(platform: Platform, stack: StackConfig, flink: FlinkResource) -> None:
    """Issue 26, point 8: declaring a freshness alone is a same-plan change: the live job
    restarts from a savepoint checkpointing every half of it; same version, same table
    (the second half then shows nothing was lost or counted twice)."""
    spec_file = platform.specs / "daily_spend.yaml"
    raw = yaml.safe_load(spec_file.read_text())
    spec_file.write_text(yaml.safe_dump({**raw, "freshness": "10s"}, sort_keys=False))
    before = versions(platform, "daily_spend")[2]
    code, out = cli(platform, stack, "plan")
    assert code == 0 and "reconfigure" in out and "change: same_plan" in out, out
    assert "freshness not declared -> 10s" in out and "restart of the live job" in out, out
    code, out = cli(platform, stack, "plan", "--apply")
    assert code == 0 and "Traceback" not in out, out
    after = versions(platform, "daily_spend")
    assert set(after) == {1, 2} and after[2].state == registry.LIVE
    assert after[2].physical_table == before.physical_table and after[2].flink_job_id != before.flink_job_id
    assert (after[2].definition or {})["job_settings"] == {"freshness": "10s"}
    assert flink.checkpoint_interval_ms(after[2].flink_job_id or "") == 5_000
    code, out = cli(platform, stack, "plan")
    assert code == 0 and "reconfigure" not in out, out


def a_dropped_column_waits_for_approval(platform: Platform, stack: StackConfig, oracle: set[Any]) -> None:
    """Issue 26, point 7: a change that drops a live column waits until exactly its plan id
    is approved; then it replays (it is breaking: the aggregate changes)."""
    sql_file = platform.specs / "daily_spend.sql"
    sql_file.write_text(sql_file.read_text().replace("COUNT(*) AS authorizations,", ""))
    spec_file = platform.specs / "daily_spend.yaml"
    raw = yaml.safe_load(spec_file.read_text())
    raw["target"]["columns"] = [c for c in raw["target"]["columns"] if c["name"] != "authorizations"]
    spec_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    code, out = cli(platform, stack, "plan")
    assert (
        code == 0
        and "change: breaking" in out
        and "waits for approval: it drops column(s) authorizations" in out
    ), out
    plan_id = out.split("plan id: ")[1].split()[0]
    code, out = cli(platform, stack, "reprocess", "daily_spend", "--wait")
    assert code == 1 and f"kappa-orch plan --apply --approve {plan_id}" in out and "Traceback" not in out, out
    assert set(versions(platform, "daily_spend")) == {1, 2}  # nothing started
    code, out = cli(platform, stack, "plan", "--json")
    [planned] = json.loads(out)
    assert planned["action"] == "blocked" and plan_id in planned["detail"], planned
    code, out = cli(platform, stack, "plan", "--apply", "--approve", "0" * 12)
    assert code != 0 and "no change waits for approval under plan id" in out, out
    code, out = cli(platform, stack, "plan", "--apply", "--approve", plan_id)
    assert code == 0 and f"approved plan {plan_id}" in out, out
    assert versions(platform, "daily_spend")[3].state == registry.LIVE
    wait_serving(platform, {(account, day, total) for account, day, _, total in oracle})


def computed_and_filtered_by_flink(platform: Platform, stack: StackConfig, oracle: set[Any]) -> None:
    """Issue 26, point 3: a column computed from a live column and a HAVING clause are a
    cheap change: the live rows are put through the candidate's own expressions by a
    bounded Flink job (no replay), and derive-parity checks it with the same job. The
    served rows must be the oracle's, filtered and computed in Python."""
    totals = sorted(total for _, _, _, total in oracle)
    threshold = totals[len(totals) // 2]  # about half the rows pass
    sql_file = platform.specs / "daily_spend.sql"
    sql = sql_file.read_text()
    sql = sql.replace("AS total_cents", "AS total_cents,\n  SUM(amount_cents) / 100 AS total_units")
    sql = sql.replace(
        "GROUP BY account, CAST(event_time AS DATE)",
        f"GROUP BY account, CAST(event_time AS DATE)\nHAVING SUM(amount_cents) >= {threshold}",
    )
    sql_file.write_text(sql)
    spec_file = platform.specs / "daily_spend.yaml"
    raw = yaml.safe_load(spec_file.read_text())
    raw["target"]["columns"].append({"name": "total_units", "type": "BIGINT"})
    spec_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    code, out = cli(platform, stack, "plan")
    assert code == 0 and "change: state_compatible" in out, out
    assert "derived by a bounded Flink job: computed columns total_units; 1 filter(s)" in out, out
    with receiving(Receiver()) as hook:
        # the HAVING clause keeps about half the rows: the gate's parity with live fails, and
        # is sent to the alert receiver (issue 29, point 2) ...
        alerting = cli_env(platform, stack, KAPPA_ALERTS=f"webhook=http://127.0.0.1:{hook.port}/alerts")
        reprocess = [KAPPA, "reprocess", "daily_spend", "--wait"]
        done = subprocess.run(reprocess, env=alerting, capture_output=True, text=True, timeout=300)
        assert done.returncode == 1 and "parity_with_live" in done.stdout, done.stdout + done.stderr
        # the gate's report names the rows: the days the HAVING clause leaves out (point 6)
        assert "key(s) added, " in done.stdout and "removed: {'account': " in done.stdout, done.stdout
        [failed] = hook.received
        assert failed["event"] == "trigger" and failed["check"] == "gate", failed
        assert "parity_with_live" in failed["summary"] and failed["pipeline"] == "daily_spend", failed
        # ... until the operator says the rows change on purpose: the candidate resumes, is
        # gated again and passes, and the alert resolves
        why = "the HAVING clause leaves out the smaller days on purpose"
        accepting = [*reprocess, "--accept", "parity_with_live", "--reason", why]
        done = subprocess.run(accepting, env=alerting, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0 and "Traceback" not in done.stdout, done.stdout + done.stderr
        assert [m["event"] for m in hook.received] == ["trigger", "resolve"], hook.received
    # the alias's serving checks ran right after the swap (issue 29, point 6)
    with registry.session(platform.warehouse) as conn:
        served_checks = {c.check_name: c.passed for c in last_checks(conn).get("daily_spend", [])}
    assert served_checks.get("serving_expectations") and served_checks.get("live_input_balance"), (
        served_checks
    )
    latest = versions(platform, "daily_spend")
    newest = latest[max(latest)]
    started = (newest.definition or {}).get("cheap_start") or {}
    assert started.get("expressions") and started.get("conditions") and not started.get("fell_back"), started
    parity = (newest.check_results or {})["derive_parity"]
    assert parity["passed"] and "derived by Flink" in parity["summary"], parity
    assert own_counts(platform, newest.version) == 0  # its job read nothing: the log was read
    # amounts are positive: Flink's BIGINT division truncates as Python's floor division does
    wait_serving(
        platform,
        {(account, day, total, total // 100) for account, day, _, total in oracle if total >= threshold},
    )
