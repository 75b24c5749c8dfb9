"""What `validate` used to accept and must refuse (found trying specs as an attacker
would): smuggled statements, hints, targets that must never be written, names that
clash with generated ones or with Flink's reserved words, unbounded sizes and durations,
dead letters fed into the log, unreadable files. Each refusal names file and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kappa_orch.spec.load import MAX_FILE_BYTES, SpecErrors, load_pipelines
from tests.unit.specs import BASE, SQL, mutated, problems, write

SMUGGLED = (
    "SELECT account, CAST(event_time AS DATE) AS spend_day, COUNT(*) AS authorizations,\n"
    "  SUM(amount_cents) AS spend_cents\n"
    "FROM authorizations WHERE auth_id <> 'x\\';\n"
    "INSERT INTO kappa_sink SELECT 'forged', CURRENT_DATE, 1, 1 --'\n"
    "GROUP BY account, CAST(event_time AS DATE)\n"
)
HINTED = SQL.replace(
    "FROM authorizations", "FROM authorizations /*+ OPTIONS('scan.startup.mode'='latest-offset') */"
)


def _column(name: str, type_: str = "BIGINT") -> dict[str, str]:
    return {"name": name, "type": type_}


def _target_column(spec: dict[str, Any], index: int, **change: str) -> None:
    spec["target"]["columns"][index] = {**spec["target"]["columns"][index], **change}


CASES: list[tuple[str, Any, str | None, str, str]] = [
    # (case, change of the spec, SQL (None: the reference), field, words of the problem)
    ("smuggled INSERT after a backslash quote", None, SMUGGLED, "sql", "found 2 statements"),
    ("Flink hint", None, HINTED, "sql", "hint"),
    (
        "alias in the registry schema",
        lambda s: s["target"].update(alias="kappa_registry.versions"),
        None,
        "target.alias",
        "may not be in schema 'kappa_registry'",
    ),
    (
        # found: refused only at deploy, as a "bug"
        "alias in the job-role functions' schema",
        lambda s: s["target"].update(alias="kappa_grants.daily_spend"),
        None,
        "target.alias",
        "may not be in schema 'kappa_grants'",
    ),
    (
        "alias in pg_catalog",
        lambda s: s["target"].update(alias="pg_catalog.pg_class_x"),
        None,
        "target.alias",
        "may not be in schema 'pg_catalog'",
    ),
    (
        "alias in information_schema",
        lambda s: s["target"].update(alias="information_schema.tables_x"),
        None,
        "target.alias",
        "information_schema",
    ),
    (
        "alias named like a version table",
        lambda s: s["target"].update(alias="analytics.daily_spend__v1"),
        None,
        "target.alias",
        "ends like a version table",
    ),
    (
        "batch table named like a version table",
        lambda s: s["batch"].update(table="other__v3"),
        None,
        "batch.table",
        "ends like a version table",
    ),
    (
        "bootstrap table in the registry schema",
        lambda s: s["sources"][0].update(
            bootstrap={"table": "kappa_registry.versions", "until": "2026-01-01"}
        ),
        None,
        "sources.0.bootstrap.table",
        "may not be in schema 'kappa_registry'",
    ),
    (
        "duplicate target columns",
        lambda s: _target_column(s, 3, name="authorizations"),
        None,
        "target",
        "duplicate target column(s) ['authorizations']",
    ),
    (
        "Flink reserved word value",
        lambda s: s["sources"][0]["columns"].append(_column("value")),
        None,
        "sources.0.columns.6.name",
        "'value' is an SQL reserved word (Flink SQL)",
    ),
    (
        "Flink reserved word timestamp",
        lambda s: _target_column(s, 3, name="timestamp"),
        None,
        "target.columns.3.name",
        "(Flink SQL)",
    ),
    (
        "source column named payload",
        lambda s: s["sources"][0]["columns"].append(_column("payload", "STRING")),
        None,
        "sources.0",
        "clashes with a name kappa_orch generates",
    ),
    (
        "source column named kafka_offset",
        lambda s: s["sources"][0]["columns"].append(_column("kafka_offset")),
        None,
        "sources.0",
        "clashes with a name kappa_orch generates",
    ),
    (
        "source column named kappa_reason",
        lambda s: s["sources"][0]["columns"].append(_column("kappa_reason", "STRING")),
        None,
        "sources.0",
        "clashes with a name kappa_orch generates",
    ),
    (
        "target column named like the alias view's member tag",
        lambda s: _target_column(s, 3, name="kappa__member_version"),
        None,
        "target",
        "clashes with a name kappa_orch generates",
    ),
    (
        "source named like a raw Kafka table",
        lambda s: s["sources"][0].update(name="kafka_authorizations"),
        None,
        "(top level)",
        "raw Kafka tables",
    ),
    (
        "DECIMAL(99, 99)",
        lambda s: _target_column(s, 3, type="DECIMAL(99, 99)"),
        None,
        "target.columns.3.type",
        "DECIMAL(p, s) needs 1 <= p <= 38",
    ),
    (
        "DECIMAL(5, 9)",
        lambda s: _target_column(s, 3, type="DECIMAL(5, 9)"),
        None,
        "target.columns.3.type",
        "0 <= s <= p",
    ),
    (
        "an unbounded duration",
        lambda s: s["start"].update(retention_needed="1000000000000000d"),
        None,
        "start.retention_needed",
        "not a duration",
    ),
    (
        "a duration of more than ten years",
        lambda s: s["retire"].update(grace="4000d") if "retire" in s else s.update(retire={"grace": "4000d"}),
        None,
        "retire.grace",
        "at most 3650d",
    ),
    (
        "no time to catch up",
        lambda s: s["catch_up"].update(timeout="0s"),
        None,
        "catch_up.timeout",
        "leaves no time to catch up",
    ),
    (
        "dead letters into the pipeline's own source topic",
        lambda s: s.update(dead_letters={"topic": "payments.authorizations"}),
        None,
        "(top level)",
        "feedback loop",
    ),
    (
        "10,000 target columns",
        lambda s: s["target"].update(columns=[_column(f"c{i}") for i in range(10_000)]),
        None,
        "target.columns",
        "at most 500",
    ),
    (
        "a 60 kB description",
        lambda s: s.update(description="x" * 60_000),
        None,
        "description",
        "at most 10000",
    ),
]


@pytest.mark.parametrize(
    ("change", "sql", "field", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_refused_with_file_and_field(
    tmp_path: Path, change: Any, sql: str | None, field: str, words: str
) -> None:
    spec = mutated(change) if change else BASE
    found = problems(write(tmp_path, spec, sql=sql or SQL))
    assert any(f == field and words in problem for f, problem, _ in found), found


def test_an_alias_that_is_another_pipelines_batch_table_is_refused(tmp_path: Path) -> None:
    write(tmp_path, BASE, name="a")
    squatter = mutated(
        lambda s: (s.update(name="squatter"), s["target"].update(alias="analytics.daily_spend_daily"))
    )
    squatter.pop("batch")
    second = write(tmp_path, squatter, name="b")
    with pytest.raises(SpecErrors) as error:
        load_pipelines(tmp_path)
    [problem] = error.value.problems
    assert (problem.path, problem.field) == (str(second), "target.alias")
    assert "'analytics.daily_spend_daily' is already used by" in problem.problem


def test_dead_letters_into_another_pipelines_source_topic_are_refused(tmp_path: Path) -> None:
    write(tmp_path, BASE, name="a")
    other = mutated(
        lambda s: (
            s.update(name="other", dead_letters={"topic": "payments.authorizations"}),
            s["target"].update(alias="analytics.other"),
            s["sources"][0].update(topic="payments.other"),
        )
    )
    second = write(tmp_path, other, name="b")
    with pytest.raises(SpecErrors) as error:
        load_pipelines(tmp_path)
    [problem] = error.value.problems
    assert (problem.path, problem.field) == (str(second), "dead_letters.topic")
    assert "a source topic of" in problem.problem


@pytest.mark.parametrize("where", ["spec", "sql"])
def test_a_file_that_is_not_utf8_is_named(tmp_path: Path, where: str) -> None:
    path = write(tmp_path, BASE)
    target = path if where == "spec" else tmp_path / "daily_spend.sql"
    target.write_bytes(target.read_bytes().replace(b"account", b"acc\xffount", 1))
    [(field, problem, fix)] = problems(path)
    assert field == ("(file)" if where == "spec" else "sql")
    assert "is not valid UTF-8 (byte 0xff on line" in problem and fix == "save the file as UTF-8"


def test_a_dangling_symlink_in_the_folder_is_named(tmp_path: Path) -> None:
    write(tmp_path, BASE)
    (tmp_path / "gone.yaml").symlink_to(tmp_path / "nowhere.yaml")
    with pytest.raises(SpecErrors) as error:
        load_pipelines(tmp_path)
    [problem] = error.value.problems
    assert problem.path.endswith("gone.yaml")
    assert "a symbolic link to a file that does not exist" in problem.problem


def test_a_huge_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    (tmp_path / "daily_spend.sql").write_text(SQL + "-- " + "x" * MAX_FILE_BYTES + "\n")
    [(field, problem, _)] = problems(path)
    assert field == "sql" and "the limit is 1,000,000" in problem


def test_yaml_aliases_are_refused_before_they_expand(tmp_path: Path) -> None:
    # nine levels of aliases of aliases: a billion items in a field that takes any value
    # (check kwargs), which the fingerprint would expand
    levels = ["&l0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 10)]
    bomb = "\n".join(f"    level{i}: {level}" for i, level in enumerate(levels))
    spec = yaml.safe_dump(BASE, sort_keys=False).replace(
        "  kwargs:\n    column: account\n", "  kwargs:\n    column: account\n" + bomb + "\n", 1
    )
    assert "*l8" in spec
    path = tmp_path / "daily_spend.yaml"
    path.write_text(spec)
    (tmp_path / "daily_spend.sql").write_text(SQL)
    [(field, problem, fix)] = problems(path)
    assert (field, problem) == ("(yaml)", "YAML aliases (*name) are not allowed in a spec")
    assert fix == "write the value out where the alias stands"
