"""The statement set Flink would run is exactly the INSERTs kappa_orch wrote (pure, from
the plan text Flink's EXPLAIN returns)."""

from __future__ import annotations

import pytest

from kappa_orch.engine.flink.statements import check_statement_set
from kappa_orch.errors import SpecError

INSERTS = [
    "INSERT INTO `kappa_sink`\nSELECT ...",
    "INSERT INTO `kappa_dead_letters`\nSELECT ...",
    "INSERT INTO `kappa_input_counts`\nSELECT ...",
]


def plan(*sinks: str) -> str:
    """An EXPLAIN STATEMENT SET's text as Flink 2.2 writes it: the abstract syntax tree (one
    LogicalSink per INSERT), then the optimized plans (which name the sinks again)."""
    tree = "\n\n".join(
        f"LogicalSink(table=[default_catalog.default_database.{s}], fields=[a, b])\n+- LogicalProject(a=[$0])"
        for s in sinks
    )
    optimized = "\n".join(f"Sink(table=[default_catalog.default_database.{s}], fields=[a, b])" for s in sinks)
    return f"== Abstract Syntax Tree ==\n{tree}\n\n== Optimized Physical Plan ==\n{optimized}\n"


def test_the_insert_kappa_orch_wrote_pass() -> None:
    check_statement_set(plan("kappa_sink", "kappa_dead_letters", "kappa_input_counts"), INSERTS)
    # a name written without backquotes is read as Flink reads it
    check_statement_set(plan("hole0"), ["insert into hole0 SELECT x FROM gen0"])


def test_a_statement_hidden_in_the_sql_is_refused_naming_what_it_writes() -> None:
    # found: `/* /* */ ; INSERT INTO kafka_authorizations ... -- */` (sqlglot nests the
    # comments, Flink does not) deployed with rc 0 and wrote a forged event into the source
    smuggled = plan("kappa_sink", "kafka_authorizations", "kappa_dead_letters", "kappa_input_counts")
    with pytest.raises(SpecError) as refused:
        check_statement_set(smuggled, INSERTS)
    assert "the SQL hides statements writing to ['kafka_authorizations']; nothing was submitted" in (
        refused.value.problem
    )
    assert "Flink does not nest /* */ comments" in (refused.value.fix or "")
    # a second INSERT into the version's own table (extra rows in the alias) as well
    with pytest.raises(SpecError, match=r"writing to \['kappa_sink'\]"):
        check_statement_set(
            plan("kappa_sink", "kappa_sink", "kappa_dead_letters", "kappa_input_counts"), INSERTS
        )
