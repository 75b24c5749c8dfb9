"""A compiled plan made comparable: content-derived uids (pure; no cluster)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from kappa_orch.engine.flink.compiled import UID_FORMAT, PlanError, canonical_plan, table_definitions


def _source(node_id: int, table: str = "kafka_payments") -> dict[str, Any]:
    # Flink writes only the identifier of a temporary table into a plan (checked on 2.2.1)
    return {
        "id": node_id,
        "type": "stream-exec-table-source-scan_1",
        "scanTableSource": {"table": {"identifier": f"`default_catalog`.`default_database`.`{table}`"}},
        "description": f"TableSourceScan(table=[[{table}]]) {node_id}",
    }


def _tables(*, group: str = "g-v1", topic: str = "payments", zone: str = "UTC") -> dict[str, str]:
    """table_definitions of a job's setup: where the plan's tables come from."""
    ddl = (
        "CREATE TEMPORARY TABLE `kafka_payments` (\n  `payload_bytes` BYTES\n) WITH (\n"
        f"  'connector' = 'kafka',\n  'topic' = '{topic}',\n  'properties.group.id' = '{group}',\n"
        "  'scan.startup.mode' = 'earliest-offset'\n)"
    )
    sink = "CREATE TEMPORARY TABLE `kappa_sink` (`s` BIGINT) WITH (\n  'table-name' = 'x__v1'\n)"
    return table_definitions([ddl, sink], {"table.local-time-zone": zone})


def _calc(node_id: int, expression: str) -> dict[str, Any]:
    return {"id": node_id, "type": "stream-exec-calc_1", "projection": [expression], "description": "Calc"}


def _aggregate(node_id: int, key: str = "account") -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "stream-exec-group-aggregate_1",
        "grouping": [key],
        "state": [{"index": 0, "ttl": "0 ms", "name": "groupAggregateState"}],
        "description": "GroupAggregate",
    }


def _sink(node_id: int, table: str) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "stream-exec-sink_1",
        "dynamicTableSink": {"table": {"identifier": f"`default_catalog`.`default_database`.`{table}`"}},
    }


def _plan(ids: list[int], *, filter_expr: str = "amount > 0", out: str = "s") -> dict[str, Any]:
    """source -> calc (filter) -> aggregate -> calc (projection) -> sink, with these ids."""
    s, f, a, p, k = ids
    return {
        "flinkVersion": "2.2",
        "nodes": [
            _source(s),
            _calc(f, filter_expr),
            _aggregate(a),
            _calc(p, out),
            _sink(k, "kappa_sink"),
        ],
        "edges": [
            {"source": s, "target": f, "shuffle": {"type": "FORWARD"}},
            {"source": f, "target": a, "shuffle": {"type": "HASH", "keys": [0]}},
            {"source": a, "target": p, "shuffle": {"type": "FORWARD"}},
            {"source": p, "target": k, "shuffle": {"type": "FORWARD"}},
        ],
    }


def _uids(plan: Any) -> list[str]:
    return [n.uid for n in plan.nodes]


def test_the_same_query_compiled_twice_gets_the_same_plan_and_uids() -> None:
    # Flink's node ids come from a counter of its JVM: a second compile numbers them anew
    first = canonical_plan(_plan([1, 2, 3, 4, 5]), _tables())
    second = canonical_plan(_plan([19, 27, 20, 31, 22]), _tables(group="g-v2"))
    assert _uids(first) == _uids(second) and first.fingerprint == second.fingerprint
    assert first.json == canonical_plan(_plan([1, 2, 3, 4, 5]), _tables()).json
    # numbered 1..n in topological order, every node told its uid
    assert [n["id"] for n in first.document["nodes"]] == [1, 2, 3, 4, 5]
    assert all(n["configuration"][UID_FORMAT].startswith("k") for n in first.document["nodes"])
    assert json.loads(first.json)["edges"][0] == {"source": 1, "target": 2, "shuffle": {"type": "FORWARD"}}


def _aggregate_uid(plan: Any) -> str:
    return next(n.uid for n in plan.nodes if n.kind.startswith("stream-exec-group-aggregate"))


def test_a_change_downstream_of_the_state_keeps_its_uid_and_one_upstream_changes_it() -> None:
    live = canonical_plan(_plan([1, 2, 3, 4, 5]), _tables())
    after = canonical_plan(_plan([1, 2, 3, 4, 5], out="s * 100"), _tables())  # after the aggregate
    before = canonical_plan(_plan([1, 2, 3, 4, 5], filter_expr="amount > 10"), _tables())  # before it
    assert _aggregate_uid(after) == _aggregate_uid(live) != _aggregate_uid(before)
    assert after.stateful_uids == live.stateful_uids != before.stateful_uids
    assert after.fingerprint != live.fingerprint != before.fingerprint


def test_what_a_plan_leaves_out_of_its_tables_still_makes_its_uids() -> None:
    # the plan names its temporary tables only: another topic, or another time zone for
    # the job, is found in the definitions, and nothing downstream of the source is shared
    live = canonical_plan(_plan([1, 2, 3, 4, 5]), _tables())
    for other in (_tables(topic="refunds"), _tables(zone="Europe/Paris")):
        assert set(_uids(canonical_plan(_plan([1, 2, 3, 4, 5]), other))).isdisjoint(_uids(live))
    # the sources are stateful (their offsets), as is every kind not known to keep no state
    assert [n.stateful for n in live.nodes] == [True, False, True, False, False]
    window = {"id": 3, "type": "stream-exec-group-window-aggregate_1", "window": {}}
    assert (
        canonical_plan(
            {
                **_plan([1, 2, 3, 4, 5]),
                "nodes": [*_plan([1, 2, 3, 4, 5])["nodes"][:2], window, *_plan([1, 2, 3, 4, 5])["nodes"][3:]],
            }
        )
        .nodes[2]
        .stateful
    )  # no `state` in the plan, and yet a window keeps its panes


def test_what_an_aggregate_emits_is_not_what_it_keeps() -> None:
    # a HAVING after a GROUP BY makes Flink's aggregate emit its retractions
    # (generateUpdateBefore): its state is the same accumulators, so it keeps its id; a
    # deduplication's flag is part of what it computes, and changes its id
    def uid_with(kind: str, emits: bool) -> str:
        plan = _plan([1, 2, 3, 4, 5])
        plan["nodes"][2] = {**plan["nodes"][2], "type": kind, "generateUpdateBefore": emits}
        return _uids(canonical_plan(plan, _tables()))[2]

    for kind in ("stream-exec-group-aggregate_1", "stream-exec-global-group-aggregate_1"):
        assert uid_with(kind, True) == uid_with(kind, False)
    assert uid_with("stream-exec-deduplicate_1", True) != uid_with("stream-exec-deduplicate_1", False)


def test_a_plan_that_is_not_flinks_is_refused() -> None:
    with pytest.raises(PlanError, match="not a Flink compiled plan"):
        canonical_plan({"nodes": [{"id": 1}], "edges": [{"source": 7, "target": 1}]})
    cyclic = _plan([1, 2, 3, 4, 5])
    cyclic["edges"].append({"source": 5, "target": 1})
    with pytest.raises(PlanError, match="cycle"):
        canonical_plan(cyclic)


def test_twin_nodes_get_distinct_uids() -> None:
    plan = _plan([1, 2, 3, 4, 5])
    twin = copy.deepcopy(plan)
    twin["nodes"].append(_calc(6, "amount > 0"))
    twin["edges"].append({"source": 1, "target": 6, "shuffle": {"type": "FORWARD"}})
    uids = _uids(canonical_plan(twin))
    assert len(set(uids)) == len(uids) == 6


def test_the_plan_folder_must_be_one_kappa_orch_reads_too() -> None:
    from pathlib import Path

    from kappa_orch.engine.flink.compiled import plan_folder
    from kappa_orch.errors import StackError

    assert plan_folder("file:///srv/plans") == Path("/srv/plans") == plan_folder("/srv/plans")
    with pytest.raises(StackError, match="not a local folder") as refused:
        plan_folder("s3://bucket/plans")
    assert "KAPPA_FLINK_PLAN_DIR" in (refused.value.fix or "")


def test_an_alias_is_a_label_not_what_a_node_computes() -> None:
    def aggregate_named(alias: str) -> dict[str, Any]:
        plan = _plan([1, 2, 3, 4, 5])
        plan["nodes"][2]["aggCalls"] = [{"internalName": "$SUM$1", "name": alias, "argList": [2]}]
        plan["nodes"][2]["outputType"] = f"ROW<`account` VARCHAR(2147483647), `{alias}` BIGINT>"
        return plan

    renamed = canonical_plan(aggregate_named("total_cents"))
    assert renamed.stateful_uids == canonical_plan(aggregate_named("spend_cents")).stateful_uids
    # what it sums is not a label
    other = aggregate_named("spend_cents")
    other["nodes"][2]["aggCalls"][0]["argList"] = [3]
    assert canonical_plan(other).stateful_uids != renamed.stateful_uids


def _join(left_first: bool) -> dict[str, Any]:
    """authorizations JOIN settlements: two sources into one join node (its inputs in
    the order of its edges)."""
    left = {"source": 1, "target": 3, "shuffle": {"type": "HASH", "keys": [0]}}
    right = {"source": 2, "target": 3, "shuffle": {"type": "HASH", "keys": [0]}}
    return {
        "nodes": [
            _source(1, "kafka_authorizations"),
            _source(2, "kafka_settlements"),
            {"id": 3, "type": "stream-exec-join_1", "state": [{"index": 0}, {"index": 1}]},
            _sink(4, "auth_settlement__v1"),
        ],
        "edges": [left, right, {"source": 3, "target": 4}]
        if left_first
        else [right, left, {"source": 3, "target": 4}],
    }


def test_a_join_keeps_its_left_and_right() -> None:
    # found: edges sorted by their source swapped a join's inputs (0 rows joined)
    plan = canonical_plan(_join(left_first=True))
    ids = {n["id"]: n for n in plan.document["nodes"]}
    into_join = [e for e in plan.document["edges"] if ids[e["target"]]["type"] == "stream-exec-join_1"]
    tables = [ids[e["source"]]["scanTableSource"]["table"]["identifier"] for e in into_join]
    assert [t.rsplit(".", 1)[-1] for t in tables] == ["`kafka_authorizations`", "`kafka_settlements`"]
    # and which side is which is part of what the join computes
    assert canonical_plan(_join(left_first=False)).stateful_uids != plan.stateful_uids
