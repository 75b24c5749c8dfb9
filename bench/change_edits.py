"""The canonical edits of bench/change_suite.py: what teams change in a pipeline's spec,
on five pipeline shapes (a per-event map, an unbounded GROUP BY, an event-time window
with allowed lateness, a deduplication, a stream-stream join).

An edit is data: text replaced in the SQL (each `old` must occur exactly once) and a
change of the spec (a function of its YAML). `drops`: the edit drops a live column (the
spec's default `approval.dropping_columns` then asks a person first). `guard`: the edit
changes what state upstream of an aggregate means (Flink's automatic operator ids would
restore it all the same: the suite runs it that way too and expects a wrong answer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SpecEdit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Edit:
    shape: str  # the base pipeline (its spec in assets/ or bench/specs/)
    key: str  # short id, e.g. ds03
    label: str
    sql: list[tuple[str, str]] = field(default_factory=list)
    spec: SpecEdit | None = None
    drops: bool = False
    guard: bool = False


def _rename(old: str, new: str) -> SpecEdit:
    def edit(raw: dict[str, Any]) -> None:
        for column in raw["target"]["columns"]:
            column["name"] = new if column["name"] == old else column["name"]
        raw["target"]["primary_key"] = [new if c == old else c for c in raw["target"]["primary_key"]]
        for check in raw.get("checks") or []:
            kwargs = check.get("kwargs") or {}
            if kwargs.get("column") == old:
                kwargs["column"] = new

    return edit


def _drop(name: str) -> SpecEdit:
    def edit(raw: dict[str, Any]) -> None:
        raw["target"]["columns"] = [c for c in raw["target"]["columns"] if c["name"] != name]

    return edit


def _swap(first: str, second: str) -> SpecEdit:
    def edit(raw: dict[str, Any]) -> None:
        columns = raw["target"]["columns"]
        i = next(n for n, c in enumerate(columns) if c["name"] == first)
        j = next(n for n, c in enumerate(columns) if c["name"] == second)
        columns[i], columns[j] = columns[j], columns[i]

    return edit


def _add(name: str, type_: str, after: str) -> SpecEdit:
    def edit(raw: dict[str, Any]) -> None:
        columns = raw["target"]["columns"]
        at = next(n for n, c in enumerate(columns) if c["name"] == after) + 1
        columns.insert(at, {"name": name, "type": type_})

    return edit


def _set(path: str, value: Any) -> SpecEdit:
    def edit(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    return edit


def _check(index: int, **kwargs: Any) -> SpecEdit:
    def edit(raw: dict[str, Any]) -> None:
        raw["checks"][index]["kwargs"].update(kwargs)

    return edit


def _add_check(expectation: str, **kwargs: Any) -> SpecEdit:
    def edit(raw: dict[str, Any]) -> None:
        raw.setdefault("checks", []).append({"expectation": expectation, "kwargs": kwargs})

    return edit


DECLINES = "SUM(CASE WHEN status = 'declined' THEN 1 ELSE 0 END) AS declines"
DS, MR, AL, AS, AC = "daily_spend", "merchant_risk", "account_latest", "auth_settlement", "auth_copy"

EDITS: list[Edit] = [
    # an unbounded GROUP BY
    Edit(DS, "ds01", "a check's threshold", spec=_check(1, min_value=-1)),
    Edit(DS, "ds02", "owner and tags", spec=_set("tags.tier", "silver")),
    Edit(
        DS,
        "ds03",
        "rename an aggregate",
        [("AS spend_cents", "AS total_cents")],
        _rename("spend_cents", "total_cents"),
    ),
    Edit(
        DS,
        "ds04",
        "drop an aggregate",
        [("  COUNT(*) AS authorizations,\n", "")],
        _drop("authorizations"),
        drops=True,
    ),
    Edit(
        DS,
        "ds05",
        "reorder two columns",
        [
            (
                "COUNT(*) AS authorizations,\n  SUM(amount_cents) AS spend_cents",
                "SUM(amount_cents) AS spend_cents,\n  COUNT(*) AS authorizations",
            )
        ],
        _swap("authorizations", "spend_cents"),
    ),
    Edit(DS, "ds06", "an equivalent SQL rewrite", [("FROM authorizations\n", "FROM authorizations AS a\n")]),
    Edit(
        DS,
        "ds07",
        "add a derived column",
        [
            (
                "SUM(amount_cents) AS spend_cents",
                "SUM(amount_cents) AS spend_cents,\n  SUM(amount_cents) / COUNT(*) AS avg_cents",
            )
        ],
        _add("avg_cents", "BIGINT", "spend_cents"),
    ),
    Edit(
        DS,
        "ds08",
        "a filter before the aggregate",
        [("WHERE status = 'approved'", "WHERE status = 'approved' AND amount_cents >= 1000")],
        guard=True,
    ),
    Edit(
        DS,
        "ds09",
        "a changed GROUP BY key",
        [
            ("SELECT\n  account,", "SELECT\n  merchant AS account,"),
            ("GROUP BY account,", "GROUP BY merchant,"),
        ],
        guard=True,
    ),
    Edit(
        DS,
        "ds10",
        "a HAVING clause",
        [
            (
                "GROUP BY account, CAST(event_time AS DATE)",
                "GROUP BY account, CAST(event_time AS DATE)\nHAVING SUM(amount_cents) >= 10000",
            )
        ],
    ),
    # an event-time window with allowed lateness
    Edit(
        MR, "mr01", "rename an aggregate", [("AS declines", "AS declined")], _rename("declines", "declined")
    ),
    Edit(
        MR,
        "mr02",
        "drop an aggregate",
        [(",\n  SUM(amount_cents) AS amount_cents", "")],
        _drop("amount_cents"),
        drops=True,
    ),
    Edit(MR, "mr03", "owner and tags", spec=_set("owner", "fraud-team@example.com")),
    Edit(
        MR,
        "mr04",
        "reorder two columns",
        [
            (
                f"COUNT(*) AS authorizations,\n  {DECLINES}",
                f"{DECLINES},\n  COUNT(*) AS authorizations",
            )
        ],
        _swap("authorizations", "declines"),
    ),
    Edit(
        MR,
        "mr05",
        "a wider window",
        [
            ("INTERVAL '1' HOUR) AS", "INTERVAL '2' HOUR) AS"),
            ("INTERVAL '1' HOUR)\n", "INTERVAL '2' HOUR)\n"),
        ],
        guard=True,
    ),
    Edit(
        MR,
        "mr06",
        "add a derived column",
        [
            (
                "SUM(amount_cents) AS amount_cents",
                "SUM(amount_cents) AS amount_cents,\n  SUM(amount_cents) / COUNT(*) AS avg_cents",
            )
        ],
        _add("avg_cents", "BIGINT", "amount_cents"),
    ),
    Edit(
        MR,
        "mr07",
        "a filter before the window",
        [("FROM authorizations\n", "FROM authorizations\nWHERE amount_cents >= 1000\n")],
        guard=True,
    ),
    # a deduplication (the latest row per key)
    Edit(
        AL, "al01", "rename a column", [("ts AS last_ts", "ts AS latest_ts")], _rename("last_ts", "latest_ts")
    ),
    Edit(
        AL,
        "al02",
        "drop a column",
        [("SELECT account, auth_id, merchant, amount_cents", "SELECT account, auth_id, amount_cents")],
        _drop("merchant"),
        drops=True,
    ),
    Edit(
        AL,
        "al03",
        "reorder two columns",
        [("amount_cents, status, ts AS last_ts\nFROM (", "status, amount_cents, ts AS last_ts\nFROM (")],
        _swap("amount_cents", "status"),
    ),
    Edit(AL, "al04", "a new check", spec=_add_check("expect_column_values_to_not_be_null", column="auth_id")),
    Edit(
        AL,
        "al05",
        "the first row instead of the latest",
        [("ORDER BY event_time DESC", "ORDER BY event_time ASC")],
        guard=True,
    ),
    Edit(
        AL,
        "al06",
        "add a derived column",
        [
            (
                "amount_cents, status, ts AS last_ts\nFROM (",
                "amount_cents, amount_cents / 100 AS amount_units, status, ts AS last_ts\nFROM (",
            )
        ],
        _add("amount_units", "BIGINT", "amount_cents"),
    ),
    Edit(
        AL,
        "al07",
        "a filter before the deduplication",
        [("  FROM authorizations\n", "  FROM authorizations\n  WHERE amount_cents >= 1000\n")],
        guard=True,
    ),
    # a stream-stream join
    Edit(
        AS,
        "as01",
        "rename a column",
        [("  s.settled_cents,", "  s.settled_cents AS settled_amount_cents,")],
        _rename("settled_cents", "settled_amount_cents"),
    ),
    Edit(AS, "as02", "drop a column", [(",\n  s.settlement_id", "")], _drop("settlement_id"), drops=True),
    Edit(
        AS,
        "as03",
        "reorder two columns",
        [
            (
                "  a.account,\n  a.amount_cents AS authorized_cents,",
                "  a.amount_cents AS authorized_cents,\n  a.account,",
            )
        ],
        _swap("account", "authorized_cents"),
    ),
    Edit(AS, "as04", "owner and description", spec=_set("owner", "settlements@example.com")),
    Edit(
        AS,
        "as05",
        "add a derived column",
        [("  s.settled_cents,", "  s.settled_cents,\n  s.settled_cents - a.amount_cents AS diff_cents,")],
        _add("diff_cents", "BIGINT", "settled_cents"),
    ),
    Edit(
        AS,
        "as06",
        "a filter after the join",
        [("ON a.auth_id = s.auth_id", "ON a.auth_id = s.auth_id\nWHERE s.settled_cents >= 1000")],
    ),
    Edit(
        AS,
        "as07",
        "a filter before the join",
        [("JOIN settlements AS s", "JOIN (SELECT * FROM settlements WHERE settled_cents >= 1000) AS s")],
        guard=True,
    ),
    # a per-event map
    Edit(
        AC,
        "ac01",
        "rename a column",
        [("account, amount_cents", "account AS account_id, amount_cents")],
        _rename("account", "account_id"),
    ),
    Edit(AC, "ac02", "drop a column", [(", status\n", "\n")], _drop("status"), drops=True),
    Edit(
        AC,
        "ac03",
        "reorder two columns",
        [("account, amount_cents", "amount_cents, account")],
        _swap("account", "amount_cents"),
    ),
    Edit(AC, "ac04", "a check's threshold", spec=_check(1, min_value=100)),
    Edit(
        AC,
        "ac05",
        "add a derived column",
        [("amount_cents, status", "amount_cents, amount_cents / 100 AS amount_units, status")],
        _add("amount_units", "BIGINT", "amount_cents"),
    ),
    Edit(AC, "ac06", "a filter", [("FROM authorizations", "FROM authorizations\nWHERE status = 'approved'")]),
    Edit(AC, "ac07", "an equivalent SQL rewrite", [("FROM authorizations", "FROM authorizations AS a")]),
]

SHAPES = {
    DS: "unbounded GROUP BY",
    MR: "event-time window, allowed lateness",
    AL: "deduplication",
    AS: "stream-stream join",
    AC: "per-event map",
}
