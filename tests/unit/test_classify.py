"""Classifications follow the columns (issue 14, point 4): a source column's tags pass
to the target columns computed from it; an alias exposing a tag it does not allow is
refused with the column and the fix; the tags show in Dagster's column schema."""

from __future__ import annotations

from pathlib import Path

from kappa_orch.dagster.lineage import table_schema
from kappa_orch.spec.classify import column_tags
from kappa_orch.spec.load import load_pipeline
from tests.unit.specs import SQL, mutated, problems, write


def tag(spec: dict, source_column: str, *tags: str) -> None:
    for column in spec["sources"][0]["columns"]:
        if column["name"] == source_column:
            column["tags"] = list(tags)


def test_a_tagged_source_column_passes_its_tag_to_what_is_computed_from_it(tmp_path: Path) -> None:
    def change(spec: dict) -> None:
        tag(spec, "account", "pii")
        tag(spec, "ts", "event_clock")  # spend_day is computed from event_time, from ts
        spec["target"]["allow"] = ["pii", "event_clock"]
        spec["target"]["columns"][3]["tags"] = ["finance"]  # a target column's own tag
        spec["target"]["allow"].append("finance")

    pipeline = load_pipeline(write(tmp_path, mutated(change)))
    assert column_tags(pipeline.spec, pipeline.sql_text) == {
        "account": ["pii"],
        "spend_day": ["event_clock"],
        "authorizations": [],
        "spend_cents": ["finance"],
    }
    columns = {c.name: c.tags for c in table_schema(pipeline).columns}
    assert columns["account"] == {"pii": ""} and columns["authorizations"] in (None, {})


def test_an_alias_exposing_a_tag_it_does_not_allow_is_refused(tmp_path: Path) -> None:
    # the reference spec tags account as pii and allows it; without the allow: refused
    spec = mutated(lambda s: s["target"].update(allow=[]))
    [(field, problem, fix)] = problems(write(tmp_path, spec))
    assert field == "target.allow"
    assert problem.startswith("target column 'account' carries ['pii']")
    assert "analytics.daily_spend would expose it" in problem
    assert fix is not None and "target.allow: [pii]" in fix


def test_a_tagged_column_the_sql_does_not_select_needs_no_allow(tmp_path: Path) -> None:
    # merchant is declared but nowhere in daily_spend's output: its tag goes nowhere
    pipeline = load_pipeline(write(tmp_path, mutated(lambda s: tag(s, "merchant", "secret")), sql=SQL))
    assert all("secret" not in tags for tags in column_tags(pipeline.spec, pipeline.sql_text).values())
