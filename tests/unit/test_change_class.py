"""Every change classified from the compiled plans (issue 26, point 2): pure, no cluster.

Plans here are small Flink plans in the shape COMPILE PLAN writes them (a source, the
parse, an aggregate, the projection after it, the target sink), made canonical, then
compared: what is new, what keeps state, what the live table can give."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from kappa_orch.engine.flink.compiled import canonical_plan, table_definitions
from kappa_orch.engine.flink.plan_diff import compare
from kappa_orch.plan.change import (
    CHEAP_START_S,
    DERIVE_JOB_S,
    DERIVE_ROWS_PER_S,
    REPLAY_OVERHEAD_S,
    SLICE_CHECK_S,
    Columns,
    Costs,
    classify,
    metadata_change,
    replay_fixed_s,
)

COLUMNS = ["account", "spend_day", "spend_cents"]
LIVE = Columns(
    [["account", "STRING"], ["spend_day", "DATE"], ["spend_cents", "BIGINT"]], ["account", "spend_day"]
)


def ref(index: int, kind: str = "BIGINT") -> dict[str, Any]:
    return {"kind": "INPUT_REF", "inputIndex": index, "type": kind}


def call(name: str, *operands: Any) -> dict[str, Any]:
    return {"kind": "CALL", "internalName": f"${name}$1", "operands": list(operands), "type": "BIGINT"}


def literal(value: int) -> dict[str, Any]:
    return {"kind": "LITERAL", "value": value, "type": "INT NOT NULL"}


def plan(
    *,
    before: Any = None,
    after: list[Any] | None = None,
    ttl: str = "0 ms",
    sink_columns: str = "",
    having: Any = None,
    aggregate: bool = True,
) -> tuple[str, list[str]]:
    """source -> calc (parse; `before`: its filter) -> aggregate -> calc (`after`) -> sink:
    the canonical document, and the sink's columns."""
    nodes = [
        {
            "id": 1,
            "type": "stream-exec-table-source-scan_1",
            "scanTableSource": {"table": {"identifier": "`default_catalog`.`default_database`.`kafka_auth`"}},
        },
        {"id": 2, "type": "stream-exec-calc_1", "projection": [ref(0), ref(1), ref(2)], "condition": before},
        {
            "id": 3,
            "type": "stream-exec-group-aggregate_1",
            "grouping": [0, 1],
            "aggCalls": [{"internalName": "$SUM$1", "argList": [2], "name": "x"}],
            "state": [{"index": 0, "name": "groupAggregateState", "ttl": ttl}],
        },
        {
            "id": 4,
            "type": "stream-exec-calc_1",
            "projection": after or [ref(0), ref(1), ref(2)],
            "condition": having,
        },
        {
            "id": 5,
            "type": "stream-exec-sink_1",
            "dynamicTableSink": {
                "table": {"identifier": "`default_catalog`.`default_database`.`kappa_sink`"}
            },
        },
    ]
    if not aggregate:  # a per-event map: no state between the parse and the sink
        nodes = [n for n in nodes if n["id"] != 3]
    ids = [n["id"] for n in nodes]
    edges = [{"source": a, "target": b, "shuffle": {"type": "FORWARD"}} for a, b in itertools.pairwise(ids)]
    columns = sink_columns.split(",") if sink_columns else COLUMNS
    sink = "CREATE TEMPORARY TABLE `kappa_sink` (" + ", ".join(f"`{c}` X" for c in columns) + ") WITH ()"
    source = "CREATE TEMPORARY TABLE `kafka_auth` (`b` BYTES) WITH (\n  'topic' = 'auth'\n)"
    tables = table_definitions([source, sink], {"table.local-time-zone": "UTC"})
    return canonical_plan({"flinkVersion": "2.2", "nodes": nodes, "edges": edges}, tables).json, columns


def classified(candidate: tuple[str, list[str]], live: Columns = LIVE, columns: Columns | None = None) -> Any:
    before, names = plan()
    diff = compare(before, candidate[0], (names, candidate[1]))
    costs = Costs(records_held=1_000_000, live_rows=50_000, events_per_s=20_000.0)
    wanted = columns or Columns(
        [[n, t] for n, (_, t) in zip(candidate[1], live.columns, strict=True)], live.primary_key
    )
    return diff, classify(diff, live, wanted, costs)


def test_the_same_plan_is_seen_as_such() -> None:
    diff, change = classified(plan())
    assert diff.same_plan and change.kind == "same_plan" and change.events_to_read == 0
    assert change.applied == "savepoint"  # a new version, its rows copied from the live one
    # found by bench/change_suite.py: its estimate said 0.0 s; a cheap start takes its fixed
    # time and the copy, like any other
    assert change.estimate_s == CHEAP_START_S + 50_000 / DERIVE_ROWS_PER_S


def test_a_replays_estimate_includes_what_a_replay_takes_besides_reading() -> None:
    # found by bench/change_suite.py: replays of 100,407 records took 27-29 s where the
    # estimate (the records over the measured catch-up speed) said 13 s
    before, names = plan()
    diff = compare(before, plan(before=True)[0], (names, names))
    costs = Costs(1_000_000, 50_000, 20_000.0, replay_fixed_s(2.0))
    change = classify(diff, LIVE, LIVE, costs)
    assert change.applied == "replay" and change.estimate_s == 1_000_000 / 20_000 + REPLAY_OVERHEAD_S + 2.0


def test_a_change_after_the_state_is_state_compatible_and_says_which_columns_derive() -> None:
    diff, change = classified(plan(after=[ref(0), ref(1), call("*", ref(2), literal(2))]))
    assert not diff.new_state and not diff.unclaimed and diff.derivable
    assert change.kind == "state_compatible" and change.cheap and change.applied == "savepoint"
    assert change.derivation == {"account": "account", "spend_day": "spend_day", "spend_cents": None}
    # the computed column is the candidate's expression over the live column, which a
    # bounded Flink job applies to the live rows (its fixed cost counted)
    doubled = {**call("*", {"kind": "LIVE_COLUMN", "name": "spend_cents"}, literal(2))}
    assert change.expressions == {"spend_cents": doubled} and change.conditions == []
    assert change.rows_to_derive == 50_000 and change.events_to_read == 0
    assert change.estimate_s == CHEAP_START_S + DERIVE_JOB_S + 50_000 / DERIVE_ROWS_PER_S
    assert any("Calc" in r or "calc" in r for r in change.reasons)


def test_a_renamed_column_is_a_copy_of_the_live_one() -> None:
    renamed = "account,spend_day,total_cents"
    diff, change = classified(plan(sink_columns=renamed))
    assert not diff.same_plan  # the table's columns are part of its sink
    assert change.kind == "state_compatible" and change.applied == "savepoint"
    assert change.derivation == {"account": "account", "spend_day": "spend_day", "total_cents": "spend_cents"}
    # its cost: the fence and a catch-up with nothing to read, and the rows copied
    assert change.events_to_read == 0 and change.rows_to_derive == 50_000 and change.estimate_s == 28.5


def test_a_cheap_start_without_state_counts_its_slice_check() -> None:
    before, names = plan(aggregate=False)
    renamed = plan(aggregate=False, sink_columns="account,spend_day,total_cents")
    diff = compare(before, renamed[0], (names, renamed[1]))
    costs = Costs(records_held=1_000_000, live_rows=50_000, events_per_s=20_000.0)
    wanted = Columns(
        [["account", "STRING"], ["spend_day", "DATE"], ["total_cents", "BIGINT"]], LIVE.primary_key
    )
    change = classify(diff, LIVE, wanted, costs)
    assert diff.stateless and change.kind == "stateless_forward", change.reasons
    # the fence, the copy and the slice check (the newest records replayed and compared)
    assert change.estimate_s == CHEAP_START_S + SLICE_CHECK_S + 50_000 / DERIVE_ROWS_PER_S


def test_a_filter_before_the_aggregate_is_breaking_and_names_the_state() -> None:
    diff, change = classified(plan(before=call(">", ref(2), literal(100))))
    assert diff.new_state and diff.unclaimed
    assert change.kind == "breaking" and change.events_to_read == 1_000_000 and change.estimate_s == 50.0
    assert any(r.startswith("new state: stream-exec-group-aggregate") for r in change.reasons)
    assert any(r.startswith("state the candidate would drop") for r in change.reasons)


def test_what_is_never_carried_over() -> None:
    now = call("CURRENT_TIMESTAMP")
    _, change = classified(plan(after=[ref(0), ref(1), call("+", ref(2), now)]))
    assert change.kind == "breaking" and any("CURRENT_TIMESTAMP() in" in r for r in change.reasons)
    _, change = classified(plan(ttl="3600000 ms"))  # a TTL is in the node: new state, and refused
    assert any("time-to-live" in r for r in change.reasons)
    udf = {"kind": "CALL", "systemName": "MY_UDF", "operands": [ref(2)], "type": "BIGINT"}
    _, change = classified(plan(after=[ref(0), ref(1), udf]))
    assert any("user-defined function MY_UDF" in r for r in change.reasons)


def test_a_column_the_live_table_does_not_keep_cannot_be_derived() -> None:
    # the candidate reads the aggregate's key field 1 twice; the live table has it; but a
    # live projection that dropped a field leaves the candidate nothing to derive it from
    live_doc, _ = plan(after=[ref(0), ref(1), literal(0)])  # the live table dropped the sum
    candidate, names = plan()
    diff = compare(live_doc, candidate, (COLUMNS, names))
    change = classify(diff, LIVE, LIVE, Costs(10, 10, None))
    assert change.kind == "breaking" and any("does not keep" in r for r in change.reasons)


def test_a_changed_key_or_type_is_breaking() -> None:
    candidate = plan(after=[ref(0), ref(1), call("*", ref(2), literal(2))])
    other_key = Columns(copy.deepcopy(LIVE.columns), ["account"])
    _, change = classified(candidate, columns=other_key)
    assert change.kind == "breaking" and any("primary key changes" in r for r in change.reasons)
    retyped = Columns(
        [["account", "INT"], ["spend_day", "DATE"], ["spend_cents", "BIGINT"]], LIVE.primary_key
    )
    _, change = classified(candidate, columns=retyped)
    assert any("changes its type (STRING -> INT)" in r for r in change.reasons)


def test_no_live_version_or_no_plan_replays_and_metadata_changes_nothing() -> None:
    costs = Costs(records_held=100, live_rows=None, events_per_s=None)
    assert classify(None, None, LIVE, costs).kind == "first"
    no_plan = classify(None, LIVE, LIVE, costs)
    assert no_plan.kind == "breaking" and no_plan.events_to_read == 100 and no_plan.estimate_s is None
    assert metadata_change().applied == "nothing" and metadata_change().cheap


def test_what_a_cheap_start_that_failed_its_gate_does() -> None:
    from kappa_orch.lifecycle.cheap import unverified
    from kappa_orch.registry.store import VersionRow

    def row(started: dict[str, Any] | None) -> VersionRow:
        definition = {"cheap_start": started} if started is not None else {}
        return VersionRow("p", 2, "f", "t__v2", "checking", "j", "g", None, None, definition=definition)  # type: ignore[arg-type]

    cheap = {"kind": "state_compatible", "from_version": 1}
    # a failed expectation would fail a replay too: the start is not suspected
    assert unverified(row(cheap), {"expectations": "3 rows below 0"}) is None
    assert unverified(row(cheap), {"derive_parity": "1 row only in v1"}) == "derive_parity: 1 row only in v1"
    assert unverified(row(None), {"derive_parity": "x"}) is None  # it replayed from the start
    assert unverified(row({**cheap, "fell_back": "before"}), {"input_balance": "x"}) is None  # once only


def test_which_changes_wait_for_approval_and_under_which_id() -> None:
    from dataclasses import replace

    from kappa_orch.plan.change import Change, dropped_columns, needs_approval, plan_id

    replay = Change("breaking", ["new state"], events_to_read=12_000_000)
    assert needs_approval(replay, 10_000_000, True) == [
        "it reads 12,000,000 records (approval.above_events: 10,000,000)"
    ]
    assert needs_approval(replay, None, True) == []  # never for its size
    cheap = Change("state_compatible", [], events_to_read=0, applied="savepoint")
    assert needs_approval(cheap, 0, True) == []  # a cheap start reads no history
    narrowed = replace(cheap, dropped=["authorizations"])
    assert needs_approval(narrowed, None, True) == ["it drops column(s) authorizations of the live table"]
    assert needs_approval(narrowed, None, False) == []
    # a renamed column is copied, not dropped; a column left out is dropped
    candidate = Columns([["account", "STRING"], ["total_cents", "BIGINT"]], ["account"])
    copies = {"account": "account", "total_cents": "spend_cents"}
    assert dropped_columns(LIVE, candidate, copies) == ["spend_day"]
    # the id binds the pipeline, the live version, both plans and the class
    one = plan_id("daily_spend", 1, ("live-plan", "candidate-plan"), "breaking")
    assert len(one) == 12 and one == plan_id("daily_spend", 1, ("live-plan", "candidate-plan"), "breaking")
    others = [
        plan_id("daily_spend", 2, ("live-plan", "candidate-plan"), "breaking"),
        plan_id("daily_spend", 1, ("live-plan", "another-plan"), "breaking"),
        plan_id("account_latest", 1, ("live-plan", "candidate-plan"), "breaking"),
    ]
    assert one not in others and len(set(others)) == 3


def test_a_filter_after_the_shared_operators_is_never_a_plain_copy() -> None:
    # found: the copy took every live row, so rows the candidate's new filter drops stayed
    # in its table (and derive_parity, comparing with the live rows unfiltered, agreed)
    diff, change = classified(plan(having=call(">", ref(2), literal(1000))))
    assert diff.filters == 1 and all(source is not None for source in (diff.derivation or {}).values())
    # the filter is applied to the live rows (by Flink: lifecycle.derive), over the live column
    assert change.kind == "state_compatible" and change.applied == "savepoint"
    assert change.conditions == [call(">", {"kind": "LIVE_COLUMN", "name": "spend_cents"}, literal(1000))]
    assert any("filter(s) after the shared operators" in r for r in change.reasons)
