"""What kappa_orch reads from a pipeline's SELECT without a Flink cluster: that it
parses, its output columns, the sources it reads, a normal form for fingerprints,
and column lineage.

sqlglot has no Flink dialect; Spark's is the nearest (backtick identifiers, INTERVAL
literals), read here with Flink's string rules and Flink's window table functions
(`Flink` below): what Flink reads as two statements must never look like one SELECT to
kappa_orch. `kappa-orch validate` also plans every SELECT with Flink's own planner
(kappa_orch.spec.planner) and checks that both read the same columns and tables.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import sqlglot
from sqlglot import TokenType, exp
from sqlglot.dialects.spark import Spark
from sqlglot.errors import ParseError, SqlglotError
from sqlglot.lineage import lineage
from sqlglot.optimizer.qualify import qualify


class Flink(Spark):
    """Spark's SQL with Flink's string literals: a quote inside a string is written twice
    ('it''s') and a backslash is an ordinary character. Spark reads \\' as an escaped
    quote; read so, `'x\\';` followed by an INSERT looked like one SELECT while Flink ran
    the INSERT too."""

    class Tokenizer(Spark.Tokenizer):
        STRING_ESCAPES = ["'"]  # noqa: RUF012 (sqlglot's own attribute type)

    class Parser(Spark.Parser):  # type: ignore[misc,valid-type]
        def _parse_lambda(self, alias: bool = False) -> exp.Expr | None:
            # a table argument of a table function: TUMBLE(TABLE t, DESCRIPTOR(c), ...)
            if self._match(TokenType.TABLE):
                return self._parse_table_parts()  # type: ignore[no-any-return]
            return super()._parse_lambda(alias)  # type: ignore[no-any-return]


DIALECT = Flink


class SqlProblem(ValueError):
    """The SQL is not a SELECT kappa_orch can deploy; the message says why."""


def parse_select(sql: str) -> exp.Query:
    """The SELECT, parsed (a fresh tree: callers may change it)."""
    return _parse_select(sql).copy()


def comments_and_code(sql: str) -> tuple[list[str], list[str]]:
    """The block comments (`/* ... */`, with their opening) and the code between string
    literals, quoted identifiers and comments, as Flink's lexer splits them."""
    comments: list[str] = []
    code: list[str] = []
    i, start, n = 0, 0, len(sql)
    while i < n:
        two = sql[i : i + 2]
        if sql[i] in "'`\"":
            code.append(sql[start:i])
            quote = sql[i]
            i += 1
            while i < n:
                if sql[i] == quote:
                    if sql[i + 1 : i + 2] == quote:  # a doubled quote stays inside
                        i += 2
                        continue
                    break
                i += 1
            i += 1
            start = i
        elif two == "--":
            code.append(sql[start:i])
            end = sql.find("\n", i)
            i = n if end < 0 else end
            start = i
        elif two == "/*":
            code.append(sql[start:i])
            end = sql.find("*/", i + 2)
            comments.append(sql[i : n if end < 0 else end + 2])
            i = n if end < 0 else end + 2
            start = i
        else:
            i += 1
    code.append(sql[start:])
    return comments, code


def hints(sql: str) -> list[str]:
    """The SQL hints (`/*+ ... */`) in the text: Flink obeys them, so they are code."""
    return [c for c in comments_and_code(sql)[0] if c.startswith("/*+")]


@functools.lru_cache(maxsize=8192)
def _parse_select(sql: str) -> exp.Query:
    found = hints(sql)
    if found:
        raise SqlProblem(
            f"the SQL has the hint {found[0][:80]!r}: hints change what Flink does (e.g. where a "
            "source starts reading) behind kappa_orch's back, so they are not allowed; state what "
            "you need in the spec (start.position, catch_up ...) or remove the hint"
        )
    try:
        statements = [s for s in sqlglot.parse(sql, read=DIALECT) if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" at line {first.get('line')}, column {first.get('col')}" if first else ""
        raise SqlProblem(f"the SQL does not parse{where}: {first.get('description', exc)}") from exc
    except SqlglotError as exc:
        raise SqlProblem(f"the SQL does not parse: {exc}") from exc
    if len(statements) != 1:
        raise SqlProblem(
            f"the SQL file must hold exactly one SELECT, found {len(statements)} statements as Flink "
            "reads them (a ; ends a statement; in Flink SQL a backslash does not escape a quote, "
            "write a quote inside a string twice: 'it''s')"
        )
    query = statements[0]
    if not isinstance(query, exp.Query):
        first_word = sql.split()[0] if sql.split() else ""
        raise SqlProblem(
            "the SQL must be a single SELECT (kappa_orch writes the DDL and the INSERT); "
            f"it starts with {first_word!r}"
        )
    return query


@functools.lru_cache(maxsize=8192)
def normalise(sql: str) -> str:
    """One text per meaning: whitespace, comments and keyword case do not change it.

    Identifiers keep their case: Flink's are case-sensitive.
    """
    return parse_select(sql).sql(dialect=DIALECT, comments=False, normalize_functions="upper")


def output_columns(query: exp.Query) -> list[str]:
    names = []
    for projection in query.selects:
        if isinstance(projection, exp.Star) or projection.find(exp.Star) is projection:
            raise SqlProblem("SELECT * is not allowed: select the target columns by name")
        name = projection.alias_or_name
        if not name:
            raise SqlProblem(
                f"the expression {projection.sql(dialect=DIALECT)!r} needs a name: add AS <column>"
            )
        names.append(name)
    return names


GROUP_WINDOW_FUNCTIONS = frozenset({"TUMBLE", "HOP", "SESSION", "CUMULATE"})


WINDOW_COLUMNS = ("window_start", "window_end", "window_time")


def _is_window_tvf(call: exp.Expr) -> bool:
    """TUMBLE(TABLE t, DESCRIPTOR(c), ...): a window table function, not a group window."""
    return (
        isinstance(call, exp.Anonymous)
        and str(call.name).upper() in GROUP_WINDOW_FUNCTIONS
        and bool(call.expressions)
        and isinstance(call.expressions[0], exp.Table)
    )


def group_windows(query: exp.Query) -> list[str]:
    """The group window functions the query calls (GROUP BY TUMBLE(...)), sorted; window
    table functions (FROM TABLE(TUMBLE(TABLE t, ...))) are not group windows."""
    names = {
        str(call.name).upper()
        for call in query.find_all(exp.Anonymous)
        if str(call.name).upper() in GROUP_WINDOW_FUNCTIONS and not _is_window_tvf(call)
    }
    return sorted(names)


_TIME_BOUNDS = (exp.Between, exp.GT, exp.GTE, exp.LT, exp.LTE)


def late_dropping(query: exp.Query, event_times: set[str]) -> list[str]:
    """The operators of the query that drop records behind the watermark, by kind (sorted):
    `group window` (GROUP BY TUMBLE(...)), `window table function`, `OVER aggregate` (an
    aggregate OVER (ORDER BY <event time>)), `interval join` (a join bounded by event
    times) and `MATCH_RECOGNIZE`. `event_times`: the sources' event-time column names."""
    kinds = {"group window"} if group_windows(query) else set()
    if any(_is_window_tvf(call) for call in query.find_all(exp.Anonymous)):
        kinds.add("window table function")
    for window in query.find_all(exp.Window):
        order = window.args.get("order")
        # ranking over event time is a deduplication or top-N: it drops nothing as late
        ranking = isinstance(window.this, exp.RowNumber) or (
            isinstance(window.this, exp.Anonymous) and str(window.this.name).upper() in ("RANK", "DENSE_RANK")
        )
        if order is not None and not ranking and _names(order) & event_times:
            kinds.add("OVER aggregate")
    for join in query.find_all(exp.Join):
        on = join.args.get("on")
        if on is not None and any(_names(bound) & event_times for bound in on.find_all(*_TIME_BOUNDS)):
            kinds.add("interval join")
    if any(True for _ in query.find_all(exp.MatchRecognize)):
        kinds.add("MATCH_RECOGNIZE")
    return sorted(kinds)


def _names(node: exp.Expr) -> set[str]:
    return {column.name for column in node.find_all(exp.Column)}


def source_tables(query: exp.Query) -> set[str]:
    """Names of the tables the query reads (CTE names excluded)."""
    ctes = {cte.alias_or_name for cte in query.find_all(exp.CTE)}
    return {table.name for table in query.find_all(exp.Table) if table.name and table.name not in ctes}


def _windows_as_tables(query: exp.Query) -> exp.Query:
    """For lineage: each window table function read as the table it windows (with the
    function's alias), its window_start/_end/_time as the descriptor column they come from."""
    descriptors: dict[str, str] = {}
    for call in list(query.find_all(exp.Anonymous)):
        if not _is_window_tvf(call):
            continue
        inner = call.expressions[0].copy()
        descriptor = next(
            (
                a
                for a in call.expressions[1:]
                if isinstance(a, exp.Anonymous) and str(a.name).upper() == "DESCRIPTOR"
            ),
            None,
        )
        outer = call.find_ancestor(exp.Table)
        if outer is None:
            continue
        if outer.alias:
            inner.set("alias", exp.TableAlias(this=exp.to_identifier(outer.alias)))
        outer.replace(inner)
        column = descriptor.find(exp.Column) if descriptor is not None else None
        if column is not None:
            descriptors[inner.alias_or_name] = column.name
    if not descriptors:
        return query
    only = next(iter(descriptors.values())) if len(descriptors) == 1 else None

    def window_column(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and node.name in WINDOW_COLUMNS:
            source = descriptors.get(node.table) if node.table else only
            if source is not None:
                column = exp.column(source, table=node.table or None)
                if isinstance(node.parent, exp.Select) and node.arg_key == "expressions":
                    return exp.alias_(column, node.name)  # selected as is: keep its output name
                return column
        return node

    transformed = query.transform(window_column)
    assert isinstance(transformed, exp.Query)
    return transformed


def column_lineage(
    sql: str, sources: Mapping[str, Sequence[str]], outputs: Sequence[str]
) -> dict[str, list[tuple[str, str]]]:
    """Per output column, the (source, column) pairs it is computed from."""
    return _column_lineage(
        sql, tuple((name, tuple(columns)) for name, columns in sources.items()), tuple(outputs)
    )


@functools.lru_cache(maxsize=8192)
def _column_lineage(
    sql: str, sources: tuple[tuple[str, tuple[str, ...]], ...], outputs: tuple[str, ...]
) -> dict[str, list[tuple[str, str]]]:
    known = dict(sources)
    schema: dict[str, object] = {name: dict.fromkeys(columns, "STRING") for name, columns in known.items()}
    query = _windows_as_tables(parse_select(sql))
    if isinstance(query, exp.Select) and not query.find(exp.Subquery, exp.CTE, exp.Union):
        return _single_scope_lineage(query, schema, known, outputs)
    # nested queries: sqlglot's lineage walks every scope (slower, exact)
    result: dict[str, list[tuple[str, str]]] = {}
    for output in outputs:
        try:
            root = lineage(output, query, schema=schema, dialect=DIALECT)
        except SqlglotError:
            result[output] = []
            continue
        deps: set[tuple[str, str]] = set()
        for node in root.walk():
            if node.downstream or not isinstance(node.source, exp.Table):
                continue
            column = node.name.split(".")[-1]
            table = node.source.name
            if table in known and column in known[table]:
                deps.add((table, column))
        result[output] = sorted(deps)
    return result


def _single_scope_lineage(
    query: exp.Select,
    schema: dict[str, object],
    known: Mapping[str, Sequence[str]],
    outputs: Sequence[str],
) -> dict[str, list[tuple[str, str]]]:
    """One qualify pass: every column reference gets its table, read off directly."""
    try:
        qualified = qualify(query, schema=schema, dialect=DIALECT, validate_qualify_columns=False)
    except SqlglotError:
        return {output: [] for output in outputs}
    tables = {t.alias_or_name: t.name for t in qualified.find_all(exp.Table)}
    result: dict[str, list[tuple[str, str]]] = {}
    for projection in qualified.selects:
        deps: set[tuple[str, str]] = set()
        for column in projection.find_all(exp.Column):
            table = tables.get(column.table)
            if table is not None and table in known and column.name in known[table]:
                deps.add((table, column.name))
        result[projection.alias_or_name] = sorted(deps)
    return {output: result.get(output, []) for output in outputs}
