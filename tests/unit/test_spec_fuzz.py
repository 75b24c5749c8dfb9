"""A fuzz test of the spec loader, the validator and the job generator.

Mutations of the reference specs are drawn from a small grammar (identifiers, types,
quotes, comments, escapes, unicode, sizes, YAML features, SQL smuggling). Every mutant
is either refused cleanly (a SpecErrors naming the file and a field; any other
exception is a failure) or accepted; an accepted mutant must generate exactly the Flink
statements intended (one sink INSERT, one dead-letter and one counter INSERT per
source, each one statement as Flink's lexer splits the statement set), and Flink's own
planner must read its SELECT as kappa_orch does (or refuse it with a message).

The figures (mutations, refused, accepted, escapes) are printed: `pytest -s` shows them.
"""

from __future__ import annotations

import copy
import random
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kappa_orch.engine.flink.planner import FlinkPlanner
from kappa_orch.engine.flink.sql import DEAD_LETTER_SINK, INPUT_COUNTS_SINK, version_job
from kappa_orch.engine.protocol import JobTarget
from kappa_orch.spec.load import SpecErrors, load_pipeline
from kappa_orch.spec.model import LoadedPipeline
from kappa_orch.spec.sql import comments_and_code

pytestmark = pytest.mark.slow  # starts a JVM or subprocesses: left out of the fast lane

ASSETS = Path(__file__).resolve().parents[2] / "assets"
REFERENCES = ["daily_spend", "merchant_risk", "account_latest", "auth_settlement"]
MUTANTS = 240

NAMES = [
    "value", "timestamp", "select", "order", "day", "payload", "kafka_offset", "kappa_reason",
    "kappa__member_version", "ñame", "名前", "a`b", 'a"b', "a'b", "", "x" * 100, "1abc", "Upper",
    "with space", "semi;colon", "dash--dash", "slash/*star", "ok_name", "user", "x__v1",
]  # fmt: skip
TYPES = [
    "DECIMAL(99, 99)", "DECIMAL(5,9)", "DECIMAL(0, 0)", "VARCHAR", "STRING; DROP TABLE x", "INT", "BIGINT",
    "ARRAY<INT>", "TIMESTAMP(9)", "", "decimal(38, 2)", "string", "DOUBLE", "DATE", "BOOLEAN",
]  # fmt: skip
SQL_INSERTS = [
    "'x\\';\nINSERT INTO kappa_sink SELECT 1 --'",  # the smuggling of the issue
    "'x\\'; INSERT INTO kafka_authorizations SELECT * FROM kafka_authorizations; --'",
    "/*+ OPTIONS('scan.startup.mode'='latest-offset') */",
    "-- a comment with ; and ' and `\n",
    "/* block ; comment */",
    "/* unterminated",
    "'unterminated",
    ";",
    ";;",
    "\n; INSERT INTO kappa_sink SELECT 1",
    "'it''s'",
    "'\\\\'",
    "U&'\\0041'",
    '"double quoted"',
    "`back``tick`",
    "'ünïcødé ✓'",
    "\u0000",
    "\\",
    "/*+*/",
    "--\n",
]
DURATIONS = ["0s", "1000000000000000d", "3651d", "-5s", "5 s", "1.5h", "10s", "1h", "999d", "", "5x"]
YAML_SNIPPETS = [
    "!!python/object/apply:os.system ['true']",
    "&anchor [1, 2]",
    "*nowhere",
    "!!binary aGVsbG8=",
    "{a: 1, a: 2}",
    "yes",
    "null",
    "2026-01-01",
    "0x1F",
    ".inf",
    "'\\u0000'",
    "[[[[[[[[[[]]]]]]]]]]",
]


def _name_paths(spec: dict[str, Any]) -> list[tuple[Any, Any]]:
    """(container, key) of every name-like field of a spec."""
    paths: list[tuple[Any, Any]] = [(spec, "name"), (spec["target"], "alias")]
    for source in spec["sources"]:
        paths.append((source, "name"))
        paths += [(column, "name") for column in source["columns"]]
    paths += [(column, "name") for column in spec["target"]["columns"]]
    return paths


def _type_paths(spec: dict[str, Any]) -> list[tuple[Any, Any]]:
    columns = [c for s in spec["sources"] for c in s["columns"]] + spec["target"]["columns"]
    return [(column, "type") for column in columns]


Mutation = Callable[[random.Random, dict[str, Any], list[str]], str]


def rename(rng: random.Random, spec: dict[str, Any], sql: list[str]) -> str:
    container, key = rng.choice(_name_paths(spec))
    value = rng.choice(NAMES)
    if key == "alias":
        value = f"{rng.choice(['analytics', 'kappa_registry', 'pg_catalog', 'information_schema'])}.{value}"
    container[key] = value
    return f"name {value!r}"


def retype(rng: random.Random, spec: dict[str, Any], sql: list[str]) -> str:
    container, key = rng.choice(_type_paths(spec))
    container[key] = rng.choice(TYPES)
    return f"type {container[key]!r}"


def sql_splice(rng: random.Random, spec: dict[str, Any], sql: list[str]) -> str:
    text = sql[0]
    where = rng.choice([text.find("WHERE "), text.find("FROM "), len(text), text.find(",")])
    piece = rng.choice(SQL_INSERTS)
    if where < 0:
        where = len(text)
    if rng.random() < 0.5 and "WHERE " in text:
        # as a string compared in the WHERE clause, where the smuggling hides
        piece = f"WHERE {rng.choice(['auth_id', 'account'])} <> {piece}\n  AND "
        sql[0] = text.replace("WHERE ", piece, 1)
    else:
        sql[0] = text[:where] + piece + text[where:]
    return f"sql {piece[:40]!r}"


def duration(rng: random.Random, spec: dict[str, Any], sql: list[str]) -> str:
    value = rng.choice(DURATIONS)
    field = rng.choice(["catch_up.timeout", "catch_up.stable_for", "retire.grace", "start.retention_needed"])
    section, key = field.split(".")
    spec.setdefault(section, {})[key] = value
    return f"{field} {value!r}"


def size(rng: random.Random, spec: dict[str, Any], sql: list[str]) -> str:
    what = rng.choice(["columns", "description", "checks", "tags"])
    if what == "columns":
        count = rng.choice([499, 501, 5_000])
        spec["target"]["columns"] = [{"name": f"c{i}", "type": "BIGINT"} for i in range(count)]
    elif what == "description":
        spec["description"] = "x" * rng.choice([9_999, 10_001, 200_000])
    elif what == "checks":
        spec["checks"] = [
            {"expectation": "expect_column_values_to_not_be_null", "kwargs": {"column": "nope"}}
        ] * rng.choice([1, 201])
    else:
        spec["tags"] = {f"t{i}": "v" for i in range(rng.choice([10, 101]))}
    return f"size {what}"


def topics(rng: random.Random, spec: dict[str, Any], sql: list[str]) -> str:
    source = rng.choice(spec["sources"])
    choice = rng.choice(["dead letters into the source", "bad topic", "unicode topic"])
    if choice == "dead letters into the source":
        spec["dead_letters"] = {"topic": source["topic"]}
    elif choice == "bad topic":
        source["topic"] = rng.choice(["a b", "../etc", "", "x" * 300, "ok.topic"])
    else:
        source["topic"] = "tópico"
    return choice


def kwargs(rng: random.Random, spec: dict[str, Any], sql: list[str]) -> str:
    check = rng.choice(
        [
            {"expectation": "expect_column_values_to_not_be_null", "kwargs": {"column": "x; drop table t"}},
            {"expectation": "expect_column_values_to_not_be_null", "kwargs": {"colour": 1}},
            {"expectation": "expect_query_results_to_match_comparison", "kwargs": {"base_query": "SELECT 1"}},
            {"expectation": "expect_nothing_at_all", "kwargs": {}},
            {"expectation": "Expect_Upper", "kwargs": {}},
        ]
    )
    spec["checks"] = [*spec.get("checks", []), check]
    return f"check {check['expectation']}"


MUTATIONS: list[Mutation] = [rename, retype, sql_splice, duration, size, topics, kwargs]


def yaml_text(rng: random.Random, spec: dict[str, Any]) -> tuple[str, str]:
    """The spec's YAML, maybe with a YAML feature spliced in as some field's value."""
    text = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
    if rng.random() < 0.25:
        snippet = rng.choice(YAML_SNIPPETS)
        field = rng.choice(["owner", "description", "sql"])
        lines = text.splitlines()
        lines = [f"{field}: {snippet}" if line.startswith(f"{field}:") else line for line in lines]
        return "\n".join(lines) + "\n", f"yaml {field}: {snippet[:30]}"
    return text, ""


def mutants(seed: int) -> Iterator[tuple[str, str, str, str]]:
    """(what, reference, spec YAML, SQL) for MUTANTS mutations."""
    rng = random.Random(seed)
    for _ in range(MUTANTS):
        reference = rng.choice(REFERENCES)
        spec = copy.deepcopy(yaml.safe_load((ASSETS / f"{reference}.yaml").read_text()))
        sql = [(ASSETS / spec["sql"]).read_text()]
        applied = [rng.choice(MUTATIONS)(rng, spec, sql) for _ in range(rng.choice([1, 1, 2, 3]))]
        text, feature = yaml_text(rng, spec)
        yield "; ".join(applied + ([feature] if feature else [])), reference, text, sql[0]


def statements(text: str) -> list[str]:
    """Split a statement set on ; as Flink's lexer does (not inside literals or comments)."""
    _, code = comments_and_code(text)
    # rebuild positions: split only on semicolons that are in code
    result, start, position = [], 0, 0
    for chunk in code:
        at = text.find(chunk, position) if chunk else position
        for i, char in enumerate(chunk):
            if char == ";":
                result.append(text[start : at + i])
                start = at + i + 1
        position = at + len(chunk)
    result.append(text[start:])
    return [s.strip() for s in result if s.strip() and not all(c in ";\n " for c in s)]


def generated_statements(pipeline: LoadedPipeline) -> list[str]:
    jdbc = {"url": "jdbc:postgresql://127.0.0.1:5432/w", "username": "u", "password": "p'; DROP"}
    target = JobTarget(pipeline.spec.target.version_table(1), "g", "127.0.0.1:9092", jdbc)
    job = version_job(pipeline.spec, pipeline.sql_text, 1, target)
    for ddl in job.setup:
        assert len(statements(ddl)) == 1, ddl
    # as the SQL Gateway receives them (kappa_orch.resources.flink)
    body = "\n".join(f"{s.rstrip().rstrip(';')}\n;" for s in job.inserts)
    return statements(body)


@pytest.fixture(scope="module")
def planner() -> Iterator[FlinkPlanner]:
    yield FlinkPlanner()


def test_every_mutant_is_refused_cleanly_or_runs_exactly_what_was_validated(
    tmp_path: Path, planner: FlinkPlanner
) -> None:
    outcomes: Counter[str] = Counter()
    escapes: list[str] = []
    for index, (what, reference, text, sql) in enumerate(mutants(seed=20261127)):
        folder = tmp_path / f"m{index:03d}"
        folder.mkdir()
        path = folder / f"{reference}.yaml"
        path.write_text(text)
        raw_sql = yaml.safe_load((ASSETS / f"{reference}.yaml").read_text())["sql"]
        (folder / raw_sql).write_text(sql)
        try:
            pipeline = load_pipeline(path)
        except SpecErrors as refused:
            assert refused.problems, what
            for problem in refused.problems:
                assert problem.path == str(path) and problem.field, (what, str(problem))
            outcomes["refused by the loader"] += 1
            continue
        # any other exception escapes here and fails the test: a traceback for bad input
        inserts = generated_statements(pipeline)
        sources = pipeline.spec.sources
        expected = (
            ["`kappa_sink`"]
            + [f"`{DEAD_LETTER_SINK}`"] * len(sources)
            + [f"`{INPUT_COUNTS_SINK}`"] * len(sources)
        )
        targets = [s.split()[2] if s.upper().startswith("INSERT INTO") else "?" for s in inserts]
        if sorted(targets) != sorted(expected):
            escapes.append(f"{what}: {targets}")
            continue
        problems = planner.problems(pipeline)
        for problem in problems:
            assert problem.path == str(path) and problem.field == "sql", (what, str(problem))
        outcomes["refused by Flink's planner" if problems else "accepted"] += 1
    total = sum(outcomes.values()) + len(escapes)
    print(
        f"\nfuzz: {total} mutations: "
        + ", ".join(f"{n} {k}" for k, n in outcomes.items())
        + f", {len(escapes)} escapes"
    )
    assert total == MUTANTS >= 200
    assert escapes == []
    assert outcomes["refused by the loader"] > MUTANTS // 2 and outcomes["accepted"] > 0
