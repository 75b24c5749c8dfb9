"""A version's compiled plan made comparable (pure: no cluster).

Flink compiles a statement set into an ExecNode graph (`COMPILE PLAN`); kappa_orch starts
the job from that plan (`EXECUTE PLAN`), so the plan is what runs and what a later change
is compared with. Flink numbers the nodes from a counter of its JVM, so the same SQL
compiled twice in the SQL Gateway gets other ids, other operator uids, and a savepoint of
the first job is refused by the second even for an unchanged query. `canonical_plan`
removes that: the nodes are numbered in a topological order, and every node's operator
uid is derived from its own content and everything upstream of it
(`table.exec.uid.format`, which Flink honours per node). An unchanged upstream means the
same uid, so the state of a stateful node maps on restore; any change upstream means a new
uid, so Flink refuses the restore at job start instead of giving wrong results (measured
on Flink 2.2.1: ../shared/research/changing-a-query.md, 0 silent errors in 12 edits).

What a node's content leaves out: its JVM id and description, the uid format itself, the
catalog and database of its tables, and the connector options that
say where and how a job reads or writes but not what it computes (its consumer group and
start position, the sink's table and URL, flush and retry tuning).

What it adds: Flink writes only the identifier of a temporary table into a plan (its
columns, topic and format are read from the session's catalog when the plan runs), so
the definition of every table a source or sink node names (its CREATE statement, less the
volatile options) is part of that node's content, and the job's configuration is part of
every source's (so of everything downstream): a changed topic, column or time zone gives
new uids, never the old state.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kappa_orch.errors import FlinkJobError, StackError

UID_FORMAT = "table.exec.uid.format"
# connector options that do not change what a node computes
VOLATILE_OPTIONS = frozenset(
    {
        "properties.group.id",
        "properties.client.id",
        "properties.client.id.prefix",
        "scan.startup.mode",
        "scan.startup.specific-offsets",
        "scan.startup.timestamp-millis",
        "scan.bounded.mode",
        "scan.bounded.specific-offsets",
        "table-name",
        "url",
        "username",
        "password",
        "sink.buffer-flush.max-rows",
        "sink.buffer-flush.interval",
        "sink.max-retries",
        "sink.parallelism",
        "sink.transactional-id-prefix",
    }
)
_TABLE_KEYS = ("scanTableSource", "dynamicTableSink", "lookupTableSource")
# ExecNodes that keep no state between records (checked: none declares `state` in a plan,
# and none is a window, join, rank, sort or deduplication operator); any other kind is
# stateful, even without a `state` entry (a window aggregate has none in the plan)
STATELESS_KINDS = frozenset(
    {
        "stream-exec-calc",
        "stream-exec-correlate",
        "stream-exec-exchange",
        "stream-exec-mini-batch-assigner",
        "stream-exec-union",
        "stream-exec-local-group-aggregate",
        "stream-exec-watermark-assigner",
        "stream-exec-expand",
        "stream-exec-drop-update-before",
        "stream-exec-values",
        "stream-exec-sink",
    }
)
SOURCE_KINDS = frozenset({"stream-exec-table-source-scan"})
# aggregates whose `generateUpdateBefore` says only what they emit, not what they keep:
# their state is the accumulators either way (Flink's GroupAggFunction and its mini-batch
# form compute the previous value from them), so a HAVING added after one (which needs its
# retractions) leaves its state the live job's. Not so for a deduplication or a rank.
_EMISSION_ONLY = {
    "stream-exec-group-aggregate": "generateUpdateBefore",
    "stream-exec-global-group-aggregate": "generateUpdateBefore",
}
_CREATE_TABLE = re.compile(r"CREATE\s+TEMPORARY\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?`?([\w.]+)`?", re.I)
_OPTION = re.compile(r"\s*'((?:[^']|'')*)'\s*=\s*'((?:[^']|'')*)',?\n?")


def kind_of(node: Mapping[str, Any]) -> str:
    """A node's ExecNode kind without its version (stream-exec-calc_1 -> stream-exec-calc)."""
    return re.sub(r"_\d+$", "", str(node.get("type", "")))


def is_stateful(node: Mapping[str, Any]) -> bool:
    """Whether the node keeps state a restore must bring back: it declares state, or it
    is not of a kind known to keep none (sources: their read offsets)."""
    return bool(node.get("state")) or kind_of(node) not in STATELESS_KINDS


# job settings that change how a job runs, not what it computes (a declared freshness
# sets them): no part of an operator's content
RUNTIME_PREFIXES = ("execution.checkpointing.",)


def table_definitions(setup: Sequence[str], configuration: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each temporary table's CREATE statement (by name) with its volatile options left
    out, and the job's configuration under "" (see the module's docstring)."""
    computing = {k: v for k, v in (configuration or {}).items() if not k.startswith(RUNTIME_PREFIXES)}
    tables = {"": json.dumps(computing, sort_keys=True)}
    for statement in setup:
        found = _CREATE_TABLE.match(statement.strip())
        if found is None:
            continue

        def kept(option: re.Match[str]) -> str:
            return "" if option.group(1) in VOLATILE_OPTIONS else option.group(0)

        tables[found.group(1)] = _OPTION.sub(kept, statement.strip())
    return tables


def plan_folder(plan_dir: str) -> Path:
    """The local folder of a plan_dir (a path or a file:// URI): the SQL Gateway writes
    compiled plans there and reads the plans it executes from there."""
    if "://" in plan_dir and not plan_dir.startswith("file://"):
        raise StackError(
            f"plan_dir {plan_dir!r} is not a local folder: kappa_orch reads the plans the SQL Gateway "
            "compiles, so it must be a folder both see",
            "set KAPPA_FLINK_PLAN_DIR to a path or file:// URI both read and write, or unset it to run "
            "jobs without compiled plans",
        )
    return Path(plan_dir.removeprefix("file://"))


class PlanError(FlinkJobError):
    """A compiled plan kappa_orch cannot read (not Flink's JSON plan format)."""


@dataclass(frozen=True)
class PlanNode:
    """One ExecNode of a canonical plan."""

    uid: str  # k<16 hex>[-n]: derived from its content and its upstream
    kind: str  # Flink's ExecNode type, e.g. stream-exec-group-aggregate_1
    stateful: bool
    inputs: tuple[str, ...]  # the uids of its inputs


@dataclass(frozen=True)
class CanonicalPlan:
    """A compiled plan with content-derived ids: `document` is what Flink executes."""

    document: dict[str, Any]
    nodes: tuple[PlanNode, ...]

    @property
    def json(self) -> str:
        return json.dumps(self.document, sort_keys=True, separators=(",", ":"))

    @property
    def stateful_uids(self) -> frozenset[str]:
        return frozenset(n.uid for n in self.nodes if n.stateful)

    @property
    def fingerprint(self) -> str:
        """The same for two plans that compute the same thing (their uids, and how they
        connect), whatever versions, tables or consumer groups they run with."""
        shape = sorted((n.uid, n.kind, n.inputs) for n in self.nodes)
        return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:16]


_FIELD_NAME = re.compile(r"`(?:[^`]|``)*`")


def _unnamed(value: Any) -> Any:
    """The value with the labels the planner copies from the SQL's aliases left out: the
    names of aggregate calls and of the fields of row types (expressions refer to fields
    by position; a source's and a sink's columns keep their names in their table's
    schema). Renaming an output column does not change what a node computes."""
    if isinstance(value, dict):
        row = value.get("type") == "ROW" and isinstance(value.get("fields"), list)
        unnamed = {
            k: _unnamed(v)
            for k, v in value.items()
            if not (k == "name" and "internalName" in value)  # an aggregate call's alias
        }
        if row:  # a row type written out as fields (a window aggregate's output type)
            unnamed["fields"] = [{**f, "name": "_"} if isinstance(f, dict) else f for f in unnamed["fields"]]
        return unnamed
    if isinstance(value, list):
        return [_unnamed(v) for v in value]
    if isinstance(value, str) and value.startswith("ROW<"):
        return _FIELD_NAME.sub("`_`", value)
    return value


def _table_name(identifier: object) -> str:
    """`default_catalog`.`default_database`.`kafka_x` -> kafka_x"""
    return str(identifier).rsplit(".", 1)[-1].strip("`")


def _content(node: Mapping[str, Any], tables: Mapping[str, str]) -> str:
    """The node as it computes: no id, description or uid format, no catalog of its
    tables, no volatile connector options, no labels from the SQL's aliases, nothing that
    only says what an aggregate emits (_EMISSION_ONLY); with the
    definition of the table it reads or writes (and, for a source, the job's configuration)."""
    emission = _EMISSION_ONLY.get(kind_of(node))
    content = copy.deepcopy({k: v for k, v in node.items() if k not in ("id", "description", emission)})
    configuration = {k: v for k, v in (content.get("configuration") or {}).items() if k != UID_FORMAT}
    content["configuration"] = configuration
    for key in _TABLE_KEYS:
        table = (content.get(key) or {}).get("table")
        if not isinstance(table, dict):
            continue
        name = _table_name(table.pop("identifier", ""))
        table["name"], table["definition"] = name, tables.get(name)
        if kind_of(node) in SOURCE_KINDS:
            table["job_configuration"] = tables.get("")
        options = (table.get("resolvedTable") or {}).get("options")
        if isinstance(options, dict):
            for option in VOLATILE_OPTIONS & set(options):
                options.pop(option)
    tables_of = {key: content.pop(key) for key in _TABLE_KEYS if key in content}
    return json.dumps({**_unnamed(content), **tables_of}, sort_keys=True)


_Graph = tuple[dict[int, Mapping[str, Any]], dict[int, list[Mapping[str, Any]]]]


def _graph(raw: Mapping[str, Any]) -> _Graph:
    """The plan's nodes by id, and each node's incoming edges."""
    try:
        nodes = {int(n["id"]): n for n in raw["nodes"]}
        inputs: dict[int, list[Mapping[str, Any]]] = {i: [] for i in nodes}
        for edge in raw["edges"]:
            inputs[int(edge["target"])].append(edge)
            if int(edge["source"]) not in nodes:
                raise KeyError(edge["source"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanError(f"not a Flink compiled plan (nodes and edges): {exc!r}") from exc
    return nodes, inputs


def _digests(graph: _Graph, tables: Mapping[str, str]) -> dict[int, str]:
    """Each node's digest: its content and its inputs' digests (with how they connect)."""
    nodes, inputs = graph
    digests: dict[int, str] = {}
    visiting: set[int] = set()

    def digest(node_id: int) -> str:
        if node_id in digests:
            return digests[node_id]
        if node_id in visiting:
            raise PlanError(f"the plan has a cycle through node {node_id}")
        visiting.add(node_id)
        # in the order of the node's inputs: a join's left and right are not interchangeable
        upstream = [
            digest(int(e["source"]))
            + json.dumps({k: v for k, v in e.items() if k not in ("source", "target")}, sort_keys=True)
            for e in inputs[node_id]
        ]
        material = _content(nodes[node_id], tables) + "|" + "|".join(upstream)
        digests[node_id] = hashlib.sha256(material.encode()).hexdigest()[:16]
        visiting.discard(node_id)
        return digests[node_id]

    for node_id in nodes:
        digest(node_id)
    return digests


def _order(graph: _Graph, digests: Mapping[int, str], tables: Mapping[str, str]) -> list[int]:
    """A topological order (a node after its inputs); ties by digest, then by content, so
    the order does not depend on Flink's numbering."""
    nodes, inputs = graph
    order: list[int] = []
    placed: set[int] = set()
    remaining = set(nodes)
    while remaining:
        ready = sorted(
            (i for i in remaining if all(int(e["source"]) in placed for e in inputs[i])),
            key=lambda i: (digests[i], _content(nodes[i], tables)),
        )
        for i in ready:
            order.append(i)
            placed.add(i)
            remaining.discard(i)
    return order


def canonical_plan(raw: Mapping[str, Any], tables: Mapping[str, str] | None = None) -> CanonicalPlan:
    """The plan with its nodes numbered 1..n in a topological order and every node's uid
    derived from its content and its inputs' uids (see the module's docstring).
    `tables`: table_definitions of the job's setup (the content the plan leaves out)."""
    graph = _graph(raw)
    nodes, inputs = graph
    tables = tables or {}
    digests = _digests(graph, tables)
    order = _order(graph, digests, tables)
    renumber = {old: new for new, old in enumerate(order, start=1)}
    seen: dict[str, int] = {}
    uids: dict[int, str] = {}
    document = copy.deepcopy(dict(raw))
    by_id = {int(n["id"]): n for n in document["nodes"]}
    canonical_nodes = []
    for old in order:
        h = digests[old]
        seen[h] = seen.get(h, 0) + 1
        uids[old] = f"k{h}" + (f"-{seen[h]}" if seen[h] > 1 else "")
        node = by_id[old]
        node["id"] = renumber[old]
        node["configuration"] = {
            **(node.get("configuration") or {}),
            UID_FORMAT: f"{uids[old]}_<transformation>",
        }
        canonical_nodes.append(node)
    document["nodes"] = canonical_nodes
    # Flink gives a node its inputs in the order of its edges in the list: each target's
    # edges keep their order (found: sorted by source, a join read its inputs swapped)
    position: dict[int, int] = {}
    slots = []
    for edge in document["edges"]:
        target = int(edge["target"])
        slots.append((renumber[target], position.get(target, 0)))
        position[target] = position.get(target, 0) + 1
        edge["source"], edge["target"] = renumber[int(edge["source"])], renumber[target]
    document["edges"] = [
        edge for _, edge in sorted(zip(slots, document["edges"], strict=True), key=lambda x: x[0])
    ]
    plan_nodes = tuple(
        PlanNode(
            uid=uids[old],
            kind=str(nodes[old].get("type", "")),
            stateful=is_stateful(nodes[old]),
            inputs=tuple(uids[int(e["source"])] for e in inputs[old]),
        )
        for old in order
    )
    return CanonicalPlan(document, plan_nodes)
