"""The fingerprint changes with what changes the output, and with nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kappa_orch.spec.fingerprint import fingerprint
from kappa_orch.spec.load import load_pipelines
from kappa_orch.spec.model import LoadedPipeline

ASSETS = Path(__file__).resolve().parents[2] / "assets"
PIPELINES = {p.name: p for p in load_pipelines(ASSETS)}
BASE = PIPELINES["daily_spend"]


def with_spec(**changes: Any) -> LoadedPipeline:
    return BASE.model_copy(update={"spec": BASE.spec.model_copy(update=changes)})


def with_sql(sql: str) -> LoadedPipeline:
    return BASE.model_copy(update={"sql_text": sql})


def with_source(**changes: Any) -> LoadedPipeline:
    source = BASE.spec.sources[0].model_copy(update=changes)
    return with_spec(sources=[source])


def with_target(**changes: Any) -> LoadedPipeline:
    return with_spec(target=BASE.spec.target.model_copy(update=changes))


def test_stable_and_deterministic() -> None:
    assert fingerprint(BASE) == fingerprint(next(p for p in load_pipelines(ASSETS) if p.name == BASE.name))
    assert len(fingerprint(BASE)) == 16
    assert len({fingerprint(p) for p in PIPELINES.values()}) == len(PIPELINES) == 4


@pytest.mark.parametrize(
    "sql",
    [
        BASE.sql_text.replace("\n", "\n\n   "),
        "-- a new comment\n" + BASE.sql_text + "\n/* and another */",
        BASE.sql_text.replace("SELECT", "select").replace("GROUP BY", "group   by").replace("CAST", "cast"),
        BASE.sql_text.replace("COUNT(*)", "count(*)"),
    ],
    ids=["whitespace", "comments", "keyword-case", "function-case"],
)
def test_formatting_of_the_sql_does_not_change_it(sql: str) -> None:
    assert fingerprint(with_sql(sql)) == fingerprint(BASE)


@pytest.mark.parametrize(
    "variant",
    [
        lambda: with_spec(owner="someone-else@example.com"),
        lambda: with_spec(description="new words"),
        lambda: with_spec(tags={"tier": "bronze"}),
        lambda: with_spec(checks=[]),
        lambda: with_spec(catch_up=BASE.spec.catch_up.model_copy(update={"max_lag": 5})),
        lambda: with_target(alias="reporting.daily_spend"),
    ],
    ids=["owner", "description", "tags", "checks", "catch-up", "alias"],
)
def test_metadata_does_not_change_it(variant: Any) -> None:
    assert fingerprint(variant()) == fingerprint(BASE)


@pytest.mark.parametrize(
    "variant",
    [
        lambda: with_sql(BASE.sql_text.replace("'approved'", "'declined'")),
        lambda: with_sql(BASE.sql_text.replace("SUM(amount_cents)", "MAX(amount_cents)")),
        lambda: with_source(topic="payments.authorizations.v2"),
        lambda: with_source(
            event_time=BASE.spec.sources[0].event_time.model_copy(update={"watermark_delay": "30s"})  # type: ignore[union-attr]
        ),
        lambda: with_target(primary_key=["account"]),
        lambda: with_target(
            columns=[
                c.model_copy(update={"type": "DECIMAL(18, 2)"}) if c.name == "spend_cents" else c
                for c in BASE.spec.target.columns
            ]
        ),
        lambda: with_spec(start=BASE.spec.start.model_copy(update={"position": "latest"})),
    ],
    ids=["filter", "aggregate", "topic", "watermark", "key", "column-type", "start-position"],
)
def test_what_changes_the_output_changes_it(variant: Any) -> None:
    assert fingerprint(variant()) != fingerprint(BASE)


def test_identifier_case_matters() -> None:
    # Flink identifiers are case-sensitive: `Account` is another column
    assert fingerprint(with_sql(BASE.sql_text.replace("account,", "Account,", 1))) != fingerprint(BASE)


def test_the_fingerprint_is_computed_once_per_load_and_never_goes_stale() -> None:
    loaded = load_pipelines(ASSETS)[2]
    assert loaded.name == "daily_spend"
    assert loaded.fingerprint == fingerprint(loaded)
    assert "fingerprint" in loaded.__dict__  # carried from here on
    changed = loaded.model_copy(update={"sql_text": loaded.sql_text.replace("'approved'", "'declined'")})
    assert changed.fingerprint == fingerprint(changed) != loaded.fingerprint
    assert loaded.model_copy().fingerprint == loaded.fingerprint
    # a carried value does not make two equal loads differ
    again = load_pipelines(ASSETS)[2]
    assert again == loaded
