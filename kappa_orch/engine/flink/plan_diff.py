"""What a candidate's canonical plan changes against the live version's (pure: no cluster).

Both plans carry content ids (engine.flink.compiled): an operator of the candidate with an
id the live plan has computes exactly what the live one does, from exactly the same input,
so its state may be restored from the live job's savepoint. The diff says which operators
on the way to the target table are new, which of them keep state, what state of the live
job nobody would claim, and whether the candidate's rows can be derived from the live
table's: the candidate's new operators must be projections and filters over one operator
both plans share (the frontier), and every field of it they read must reach the live
table unchanged (a column that copies it) with nothing filtered after it in the live plan.

It also says when nothing may be carried over whatever the diff: a function whose result
is not a function of its input (the time of day, a random number, a UUID), processing time,
a user-defined function (its code is not in the plan), a state time-to-live (a replay
forgets other keys at other times), a sink that keeps its own state (its upsert key is not
the primary key), or another Flink version.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from kappa_orch.engine.flink.compiled import UID_FORMAT, PlanError, is_stateful, kind_of
from kappa_orch.engine.flink.planner import SINK
from kappa_orch.engine.flink.rex_sql import KAPPA_FUNCTIONS, NONDETERMINISTIC, untranslatable
from kappa_orch.engine.flink.sql import DEAD_LETTER_SINK, INPUT_COUNTS_SINK
from kappa_orch.engine.protocol import PlanDiff

# operators between the frontier and the table that pass their input through unchanged
_PASS_THROUGH = frozenset(
    {
        "stream-exec-exchange",
        "stream-exec-drop-update-before",
        "stream-exec-mini-batch-assigner",
        "stream-exec-sink",
    }
)
DESCRIPTION_CHARS = 160


@dataclass(frozen=True)
class _Plan:
    """A canonical plan as read back: nodes by id, each node's inputs (in order), uids."""

    flink_version: str | None
    nodes: dict[int, dict[str, Any]]
    inputs: dict[int, list[int]]
    uids: dict[int, str]

    def target(self) -> int:
        sinks = [i for i, n in self.nodes.items() if table_of(n, "dynamicTableSink") == SINK]
        if len(sinks) != 1:
            raise PlanError(f"the plan has {len(sinks)} sinks into {SINK}, not one")
        return sinks[0]

    def sinks_fed(self, node_id: int) -> set[str]:
        """The tables the node's output reaches."""
        fed, seen, todo = set(), set(), [node_id]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            table = table_of(self.nodes[current], "dynamicTableSink")
            if table is not None:
                fed.add(table)
            todo.extend(i for i, ins in self.inputs.items() if current in ins)
        return fed

    def upstream(self, node_id: int) -> set[int]:
        seen, todo = set(), [node_id]
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(self.inputs[current])
        return seen

    def named(self, node_id: int) -> str:
        node = self.nodes[node_id]
        what = str(node.get("description") or "")
        if len(what) > DESCRIPTION_CHARS:
            what = what[: DESCRIPTION_CHARS - 3] + "..."
        return f"{kind_of(node)}: {what}" if what else kind_of(node)


def table_of(node: dict[str, Any], key: str) -> str | None:
    identifier = ((node.get(key) or {}).get("table") or {}).get("identifier")
    return None if identifier is None else str(identifier).rsplit(".", 1)[-1].strip("`")


def read_plan(document: str) -> _Plan:
    """A canonical plan's document read back with the uids it was given."""
    try:
        raw = json.loads(document)
        nodes = {int(n["id"]): n for n in raw["nodes"]}
        inputs: dict[int, list[int]] = {i: [] for i in nodes}
        for edge in raw["edges"]:
            inputs[int(edge["target"])].append(int(edge["source"]))
        uids = {i: str(n["configuration"][UID_FORMAT]).split("_<", 1)[0] for i, n in nodes.items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanError(f"not a canonical compiled plan (nodes, edges and uids): {exc!r}") from exc
    return _Plan(raw.get("flinkVersion"), nodes, inputs, uids)


def _rex(value: Any) -> Iterator[dict[str, Any]]:
    """Every expression node in a value of a plan's node (calls, references, literals)."""
    if isinstance(value, dict):
        if "kind" in value:
            yield value
        for item in value.values():
            yield from _rex(item)
    elif isinstance(value, list):
        for item in value:
            yield from _rex(item)


def _function(call: dict[str, Any]) -> str:
    name = call.get("internalName") or call.get("systemName") or call.get("catalogName") or ""
    return str(name).strip("$").removesuffix("$1").upper()


def refusals(live: _Plan, candidate: _Plan, branch: set[int]) -> list[str]:
    """Why nothing may be carried over from the live job into the candidate."""
    found: list[str] = []
    if live.flink_version != candidate.flink_version:
        found.append(
            f"the live plan was compiled by Flink {live.flink_version}, the candidate's by "
            f"{candidate.flink_version}: state is only restored within one Flink version"
        )
    for node_id in sorted(branch):
        node, named = candidate.nodes[node_id], candidate.named(node_id)
        for call in _rex(node):
            if call.get("kind") != "CALL":
                continue
            function = _function(call)
            if function in NONDETERMINISTIC:
                found.append(f"{function}() in {named}: its result is not a function of the events")
            elif "catalogName" in call or ("systemName" in call and function not in KAPPA_FUNCTIONS):
                found.append(f"the user-defined function {function} in {named}: its code is not in the plan")
        if '"PROCTIME"' in json.dumps(node.get("window")) or '"PROCTIME"' in json.dumps(
            node.get("windowing")
        ):
            found.append(f"a processing-time window in {named}")
        ttls = [s.get("ttl") for s in node.get("state") or [] if s.get("ttl") not in (None, "0 ms")]
        if ttls:
            found.append(f"state time-to-live {ttls[0]} in {named}: a replay forgets keys at other times")
        if kind_of(node) == "stream-exec-sink" and node.get("state"):
            found.append(f"{named} keeps state (its input's upsert key is not the table's primary key)")
    return list(dict.fromkeys(found))


def _chain(plan: _Plan, start: int, end: int) -> list[int] | None:
    """The nodes after `start` up to `end`, when each has exactly one input and the way
    from `end` back leads to `start`; None otherwise."""
    path, current = [], end
    while current != start:
        ins = plan.inputs[current]
        if len(ins) != 1:
            return None
        path.append(current)
        current = ins[0]
    return path[::-1]


def rewrite(expression: Any, replace: Callable[[dict[str, Any]], Any]) -> Any:
    """The expression (a plan's JSON: dicts and lists) with every node `replace` gives a
    replacement for (not None) replaced by it, and every other node rewritten inside."""
    if isinstance(expression, list):
        return [rewrite(e, replace) for e in expression]
    if not isinstance(expression, dict):
        return expression
    replaced = replace(expression)
    if replaced is not None:
        return replaced
    return {k: rewrite(v, replace) for k, v in expression.items()}


def _substitute(expression: Any, layer: list[Any] | None) -> Any:
    """The expression over the frontier's fields: every INPUT_REF replaced by what the
    layer below computes for that field (None: the frontier itself)."""

    def field(node: dict[str, Any]) -> Any:
        if node.get("kind") != "INPUT_REF":
            return None
        index = int(node["inputIndex"])
        if layer is None:
            return {"kind": "FRONTIER", "index": index, "type": node.get("type")}
        return copy.deepcopy(layer[index])

    return rewrite(expression, field)


@dataclass(frozen=True)
class _Outputs:
    """What a chain of operators writes, as expressions over the frontier's fields."""

    columns: list[Any] | None  # None: the frontier's fields, unchanged
    conditions: list[Any]


def _outputs(plan: _Plan, chain: list[int]) -> _Outputs | str:
    """The chain's projections and filters composed, or why it is not only those."""
    layer: list[Any] | None = None
    conditions: list[Any] = []
    for node_id in chain:
        node = plan.nodes[node_id]
        kind = kind_of(node)
        if kind == "stream-exec-calc":
            if node.get("condition") is not None:
                conditions.append(_substitute(node["condition"], layer))
            layer = [_substitute(p, layer) for p in node.get("projection") or []]
        elif kind not in _PASS_THROUGH:
            return plan.named(node_id)
    return _Outputs(layer, conditions)


def through(plan: _Plan, start: int) -> _Outputs | str:
    """What the operators from `start` to the target table write, as expressions over
    `start`'s fields, or why they are not only projections and filters."""
    chain = _chain(plan, start, plan.target())
    return (
        "the way to the table is not a single line of operators" if chain is None else _outputs(plan, chain)
    )


def _fields(expression: Any) -> set[int]:
    return {int(e["index"]) for e in _rex(expression) if e.get("kind") == "FRONTIER"}


def _untyped(expression: Any) -> Any:
    """The expression with its frontier references' types left out (an identity layer
    has none; a reference's type is its field's in both plans)."""
    return rewrite(
        expression,
        lambda node: {"kind": "FRONTIER", "index": node["index"]} if node.get("kind") == "FRONTIER" else None,
    )


def _key(expression: Any) -> str:
    return json.dumps(_untyped(expression), sort_keys=True)


def _rebased(expression: Any, live: dict[str, str]) -> Any:
    """The expression with every part the live table keeps (the same expression over the
    frontier as one of its columns) replaced by that column."""

    def kept(node: dict[str, Any]) -> Any:
        column = live.get(_key(node))
        return None if column is None else {"kind": "LIVE_COLUMN", "name": column}

    return rewrite(expression, kept)


def _identity(width: int) -> list[Any]:
    return [{"kind": "FRONTIER", "index": j} for j in range(width)]


def _kept(expressions: Sequence[Any], names: Sequence[str]) -> dict[str, str]:
    """What the live table keeps: each column's expression over the frontier -> the
    column; and for a column that only casts a value to its own type made nullable (the
    planner writes CAST(COUNT(*) AS BIGINT) for a nullable BIGINT column), the value
    itself too: the column equals it on every row."""
    kept: dict[str, str] = {}
    for name, expression in zip(names, expressions, strict=False):
        kept.setdefault(_key(expression), name)
    for name, expression in zip(names, expressions, strict=False):
        operands = expression.get("operands") or [] if isinstance(expression, dict) else []
        if (
            isinstance(expression, dict)
            and expression.get("kind") == "CALL"
            and str(expression.get("internalName")) == "$CAST$1"
            and len(operands) == 1
            and isinstance(operands[0], dict)
            and str(operands[0].get("type", "")).removesuffix(" NOT NULL") == expression.get("type")
        ):
            kept.setdefault(_key(operands[0]), name)
    return kept


@dataclass(frozen=True)
class _Derived:
    """The candidate's rows as the live rows put through expressions: candidate column ->
    the live column it copies (None: computed), the computed columns' expressions and the
    filters (over LIVE_COLUMN leaves), or why they cannot be."""

    copies: dict[str, str | None] | None
    problems: list[str]
    expressions: dict[str, Any]
    conditions: list[Any]


def derivation(
    live: _Plan, candidate: _Plan, frontier: int, columns: tuple[Sequence[str], Sequence[str]]
) -> _Derived:
    """How the candidate's rows derive from the live table's (see _Derived)."""
    live_columns, candidate_columns = columns
    uid = candidate.uids[frontier]
    live_frontier = next(i for i, u in live.uids.items() if u == uid)
    named = candidate.named(frontier)
    live_chain = _chain(live, live_frontier, live.target())
    candidate_chain = _chain(candidate, frontier, candidate.target())
    if live_chain is None or candidate_chain is None:
        why = f"the way from {named} to the table is not a single line of operators"
        return _Derived(None, [why], {}, [])
    before, after = _outputs(live, live_chain), _outputs(candidate, candidate_chain)
    if isinstance(before, str) or isinstance(after, str):
        other = before if isinstance(before, str) else after
        why = f"{other} lies between {named} and the table: only projections and filters derive"
        return _Derived(None, [why], {}, [])
    if before.conditions:
        why = f"the live plan filters rows after {named}: the rows it left out are not in its table"
        return _Derived(None, [why], {}, [])
    kept = _kept(before.columns or _identity(len(live_columns)), live_columns)
    computed = after.columns or _identity(len(candidate_columns))
    result: dict[str, str | None] = {}
    expressions: dict[str, Any] = {}
    missing = []
    for name, expression in zip(candidate_columns, computed, strict=False):
        rebased = _rebased(expression, kept)
        if _fields(rebased):
            missing.append(name)
        copied = rebased.get("kind") == "LIVE_COLUMN" if isinstance(rebased, dict) else False
        result[name] = rebased["name"] if copied else None
        if not copied:
            expressions[name] = rebased
    conditions = [_rebased(c, kept) for c in after.conditions]
    missing += ["a filter" for c in conditions if _fields(c)]
    if missing:
        why = f"{', '.join(missing)} read(s) what {named} computes but the live table does not keep"
        return _Derived(result, [why], {}, [])
    return _Derived(result, untranslatable(expressions, conditions), expressions, conditions)


def compare(
    live_document: str, candidate_document: str, columns: tuple[Sequence[str], Sequence[str]]
) -> PlanDiff:
    """The PlanDiff of two canonical plans (see the module's docstring)."""
    live, candidate = read_plan(live_document), read_plan(candidate_document)
    live_uids = set(live.uids.values())
    branch = candidate.upstream(candidate.target())
    new = sorted(i for i in branch if candidate.uids[i] not in live_uids)
    unclaimed = sorted(
        i
        for i, n in live.nodes.items()
        if is_stateful(n) and live.uids[i] not in set(candidate.uids.values())
    )
    bookkeeping = [i for i in unclaimed if live.sinks_fed(i) <= {INPUT_COUNTS_SINK, DEAD_LETTER_SINK}]
    stateful = [i for i in branch if is_stateful(candidate.nodes[i])]
    diff = PlanDiff(
        same_plan=live_uids == set(candidate.uids.values()) and len(live.uids) == len(candidate.uids),
        changed=tuple(candidate.named(i) for i in new),
        new_state=tuple(candidate.named(i) for i in new if is_stateful(candidate.nodes[i])),
        unclaimed=tuple(live.named(i) for i in unclaimed if i not in bookkeeping),
        unclaimed_bookkeeping=tuple(live.named(i) for i in bookkeeping),
        refusals=tuple(refusals(live, candidate, branch)),
        stateless=all(kind_of(candidate.nodes[i]) == "stream-exec-table-source-scan" for i in stateful),
    )
    if not new:  # the same operators up to the table itself (its columns too)
        return _with(diff, {c: c for c in columns[1]}, [])
    if diff.new_state:
        return diff  # the rows of a new stateful operator come only from the events
    frontier = sorted({i for n in new for i in candidate.inputs[n] if candidate.uids[i] in live_uids})
    if len(frontier) != 1:
        why = "no operator" if not frontier else f"{len(frontier)} operators"
        return _with(diff, None, [f"the changed operators read {why} of the live plan: derive needs one"])
    derived = derivation(live, candidate, frontier[0], columns)
    return replace(
        _with(diff, derived.copies, derived.problems),
        filters=len(derived.conditions),
        expressions=derived.expressions,
        conditions=tuple(derived.conditions),
    )


def _with(diff: PlanDiff, mapped: dict[str, str | None] | None, problems: list[str]) -> PlanDiff:
    return replace(diff, derivation=mapped, not_derivable=tuple(problems))
