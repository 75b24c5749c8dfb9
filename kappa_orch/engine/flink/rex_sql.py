"""A compiled plan's expressions written back as Flink SQL (pure): what a derivation
(engine.flink.derive) runs over the live rows. Only what is written here is written back:
columns, literals of exact types, casts, CASE, arithmetic, comparisons, boolean logic and
a few deterministic built-in functions; anything else is Untranslatable (the change then
replays).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from kappa_orch.engine.flink.sources import literal

# infix operators by Flink's internal name (between their operands)
_BINARY = frozenset({"+", "-", "*", "/", "%", "=", "<>", "<", "<=", ">", ">=", "AND", "OR", "||"})
_POSTFIX = frozenset({"IS NULL", "IS NOT NULL", "IS TRUE", "IS FALSE", "IS NOT TRUE", "IS NOT FALSE"})
# functions written back by name: deterministic built-ins whose SQL name is their own
_FUNCTIONS = frozenset(
    {
        "ABS",
        "CEIL",
        "CHAR_LENGTH",
        "COALESCE",
        "CONCAT",
        "FLOOR",
        "GREATEST",
        "LEAST",
        "LOWER",
        "MOD",
        "NULLIF",
        "POWER",
        "ROUND",
        "SIGN",
        "TRUNCATE",
        "UPPER",
    }
)
# functions whose result is not a function of their arguments (Flink's names)
NONDETERMINISTIC = frozenset(
    {
        "NOW",
        "CURRENT_TIMESTAMP",
        "CURRENT_DATE",
        "CURRENT_TIME",
        "LOCALTIMESTAMP",
        "LOCALTIME",
        "CURRENT_ROW_TIMESTAMP",
        "UNIX_TIMESTAMP",
        "RAND",
        "RAND_INTEGER",
        "UUID",
        "PROCTIME",
        "PROCTIME_MATERIALIZE",
    }
)
# the stack's own functions: shipped with kappa_orch's jar, checked by its tests
KAPPA_FUNCTIONS = frozenset({"KAPPA_PARSE", "KAPPA_EVENT_MILLIS"})
_EXACT_LITERALS = ("TINYINT", "SMALLINT", "INT", "BIGINT", "BOOLEAN")


class Untranslatable(ValueError):
    """An expression this module does not write back as Flink SQL (the change replays)."""


def name_of(call: Mapping[str, Any]) -> str:
    raw = str(call.get("internalName") or call.get("systemName") or call.get("catalogName") or "")
    return raw.removeprefix("$").removesuffix("$1").upper()


def type_sql(kind: str) -> str:
    """A plan's type as a CAST target (nullability is the expression's, not the target's)."""
    base = kind.removesuffix(" NOT NULL")
    if not re.fullmatch(r"[A-Z_ ]+(\(\d+(, ?\d+)?\))?", base):
        raise Untranslatable(f"the type {kind}")
    return base


def _literal(node: Mapping[str, Any]) -> str:
    kind, value = str(node.get("type", "")), node.get("value")
    base = kind.removesuffix(" NOT NULL")
    if value is None:
        return f"CAST(NULL AS {type_sql(kind)})"
    if base == "BOOLEAN":
        return "TRUE" if value is True else "FALSE"
    if base.split("(")[0] in _EXACT_LITERALS and isinstance(value, int):
        text = str(value)
        return text if base == "INT" else f"CAST({text} AS {base})"
    if base.startswith("DECIMAL") and isinstance(value, int | float | str):
        return f"CAST({literal(value)} AS {type_sql(kind)})"
    if base.startswith(("CHAR", "VARCHAR")) and isinstance(value, str):
        return literal(value)
    raise Untranslatable(f"the literal {json.dumps(value)} of type {kind}")


def expression_sql(node: Any) -> str:
    """The expression (a plan's expression rebased onto live columns: LIVE_COLUMN leaves,
    literals and calls) as Flink SQL; Untranslatable when it cannot be written back."""
    if not isinstance(node, Mapping):
        raise Untranslatable(f"not an expression: {node!r}")
    kind = node.get("kind")
    if kind == "LIVE_COLUMN":
        return f"`{node['name']}`"
    if kind == "LITERAL":
        return _literal(node)
    if kind != "CALL":
        raise Untranslatable(f"a {kind} reference")
    name, operands = name_of(node), [expression_sql(o) for o in node.get("operands") or []]
    syntax = node.get("syntax")
    if name == "CAST" and len(operands) == 1:
        return f"CAST({operands[0]} AS {type_sql(str(node['type']))})"
    if name == "CASE" and len(operands) >= 3 and len(operands) % 2 == 1:
        pairs = " ".join(f"WHEN {w} THEN {t}" for w, t in zip(operands[:-1:2], operands[1:-1:2], strict=True))
        return f"(CASE {pairs} ELSE {operands[-1]} END)"
    if name in _BINARY and syntax in ("BINARY", None) and len(operands) >= 2:
        return "(" + f" {name} ".join(operands) + ")"
    if name in ("-", "+") and syntax == "PREFIX" and len(operands) == 1:
        return f"({name}{operands[0]})"
    if name == "NOT" and len(operands) == 1:
        return f"(NOT {operands[0]})"
    if name in _POSTFIX and len(operands) == 1:
        return f"({operands[0]} {name})"
    if name in _FUNCTIONS and syntax in ("FUNCTION", "FUNCTION_ID", None):
        return f"{name}({', '.join(operands)})"
    raise Untranslatable(f"the function {name}")


def untranslatable(expressions: dict[str, Any], conditions: list[Any]) -> list[str]:
    """Why Flink SQL cannot be written back for some of the expressions (derive)."""
    found = []
    for what, expression in [*expressions.items(), *(("a filter", c) for c in conditions)]:
        try:
            expression_sql(expression)
        except Untranslatable as exc:
            found.append(f"{what} uses {exc}, which kappa_orch does not derive from the live rows")
    return found
