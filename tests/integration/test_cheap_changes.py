"""A change the compiled plans prove safe starts from the live version's savepoint, not
from the log's start, and is verified before the swap (issue 26, points 3 and 4).

At scale: 200,000 authorizations over three days in three skewed partitions, broken and
wrong-clock events mixed in. The live version reads the first half of every partition;
the spec then renames a column (the plans say state-compatible: the aggregate's state
and the source offsets carry over, every column copies a live one); the second half is
produced after the swap. The served alias must equal the independent oracle over the
whole log, the candidate's own job must have read only what came after the fence, and
its gate must have checked it against the live version row for row. A cheap start whose
copy is wrong (a fault injected into the fence) is caught by that check and the same
version replays the log instead: exact again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.lifecycle import cheap
from kappa_orch.lifecycle.deploy import deploy
from kappa_orch.lifecycle.services import Services
from kappa_orch.registry import store as registry
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.spec.model import LoadedPipeline
from kappa_orch.stack.config import StackConfig
from tests.integration import scale
from tests.integration.at_scale import produce_records
from tests.integration.platform import Platform, isolated_platform, run_reprocess
from tests.integration.served import cli, serving, versions

pytestmark = pytest.mark.integration

EVENTS = 200_000


@pytest.fixture(scope="module")
def log() -> scale.ScaleLog:
    return scale.scale_log(EVENTS, seed=26)


@pytest.fixture
def platform(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> Iterator[Platform]:
    with isolated_platform(stack, kafka, flink, tmp_path, only=["daily_spend"]) as isolated:
        yield isolated


def produce_half(
    kafka: KafkaResource, platform: Platform, log: scale.ScaleLog, half: int
) -> list[dict[str, Any]]:
    """The first (0) or second (1) half of every partition, with its Kafka timestamps; the
    valid authorizations in it (for the oracle)."""
    topic, valid = platform.topic("payments.authorizations"), []
    for partition, records in log.auth_log.records.items():
        middle = len(records) // 2
        first, last = (0, middle) if half == 0 else (middle, len(records))
        produce_records(kafka, topic, partition, records[first:last])
        for offset in range(first, last):
            value = records[offset][1]
            if (partition, offset) not in log.auth_log.dead and value is not None:
                valid.append(json.loads(value))
    return valid


def rename_spend(platform: Platform) -> LoadedPipeline:
    """daily_spend's spend_cents is called total_cents from now on (SQL, then spec)."""
    sql_file = platform.specs / "daily_spend.sql"
    sql_file.write_text(sql_file.read_text().replace("AS spend_cents", "AS total_cents"))
    spec_file = platform.specs / "daily_spend.yaml"
    raw = yaml.safe_load(spec_file.read_text())
    for column in raw["target"]["columns"]:
        if column["name"] == "spend_cents":
            column["name"] = "total_cents"
    for check in raw.get("checks") or []:
        kwargs = check.get("kwargs") or {}
        if kwargs.get("column") == "spend_cents":
            kwargs["column"] = "total_cents"
    spec_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    return platform.pipelines()["daily_spend"]


def wait_serving(platform: Platform, rows: set[tuple[Any, ...]], timeout_s: float = 240) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while (got := serving(platform, "daily_spend")) != rows:
        assert time.monotonic() < deadline, f"{len(got)} rows served, {len(rows)} expected"
        time.sleep(2)


def own_counts(platform: Platform, version: int) -> int:
    """The records the version's own job read (its counters, without what it carried)."""
    with platform.warehouse.connect() as conn:
        counted = conn.execute(
            text(
                "SELECT coalesce(sum(records), 0) FROM kappa_counts.input_counts "
                "WHERE pipeline = :p AND version = :v"
            ),
            {"p": "daily_spend", "v": version},
        ).scalar()
    return int(counted or 0)


def test_a_renamed_column_starts_from_the_live_savepoint_and_is_exact(
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

    second = produce_half(kafka, platform, log, 1)
    wait_serving(platform, scale.daily_spend(first + second))
    # the candidate's own job read only what came after the fence: the second half
    read_by_v2 = own_counts(platform, 2)
    replay = log.auth_log.total
    assert read_by_v2 == replay - read_by_v1
    print(f"cheap start read {read_by_v2:,} of {replay:,} records ({read_by_v2 / replay:.0%} of a replay)")
    a_dropped_column_waits_for_approval(platform, stack, scale.daily_spend(first + second))


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


def test_a_cheap_start_whose_copy_is_wrong_is_caught_and_replays(
    platform: Platform, log: scale.ScaleLog, kafka: KafkaResource, flink: FlinkResource, monkeypatch: Any
) -> None:
    first = produce_half(kafka, platform, log, 0)
    assert run_reprocess(platform, platform.pipelines()["daily_spend"], kafka, flink).success
    wait_serving(platform, scale.daily_spend(first))
    copy_rows = cheap._copy_rows

    def lossy_copy(*args: Any) -> int:
        """The fence's copy, losing one row (the fault a wrong fence would make)."""
        copied = copy_rows(*args)
        pipeline, version = args[0], args[3]
        table = f"{pipeline.spec.target.schema_name}.{pipeline.spec.target.version_table(version)}"
        with platform.warehouse.begin() as conn:
            conn.execute(text(f"DELETE FROM {table} WHERE ctid = (SELECT min(ctid) FROM {table})"))
        return copied

    monkeypatch.setattr(cheap, "_copy_rows", lossy_copy)
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
