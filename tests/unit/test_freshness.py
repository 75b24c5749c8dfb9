"""Declared freshness (issue 26, point 8), pure parts: what it sets in the job, that it is
no part of what the job computes (fingerprint, canonical plan), that changing it alone is
a same-plan change the plan carries out as a restart, and how it is checked."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from kappa_orch.dagster.health import stale_versions
from kappa_orch.engine.flink.compiled import table_definitions
from kappa_orch.engine.flink.sql import job_configuration, sink_ddl
from kappa_orch.plan.change import job_settings, settings_change, settings_changes
from kappa_orch.plan.decide import RegistryView, plan
from kappa_orch.registry import store as registry
from kappa_orch.resources.kafka_offsets import event_time_lag
from kappa_orch.spec.fingerprint import fingerprint
from kappa_orch.spec.load import load_pipelines
from kappa_orch.spec.model import LoadedPipeline, PipelineSpec

ASSETS = Path(__file__).resolve().parents[2] / "assets"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
JDBC = {"url": "jdbc:postgresql://127.0.0.1/w", "username": "u", "password": "p"}
BASE = next(p for p in load_pipelines(ASSETS) if p.name == "daily_spend")


def fresh(value: str | None) -> LoadedPipeline:
    spec = PipelineSpec.model_validate({**BASE.spec.model_dump(by_alias=True), "freshness": value})
    return LoadedPipeline(spec=spec, sql_text=BASE.sql_text, path=BASE.path)


def live(settings: dict[str, object] | None, fp: str) -> registry.VersionRow:
    definition = {"job_settings": settings} if settings is not None else {}
    return registry.VersionRow(
        "daily_spend", 1, fp, "daily_spend__v1", registry.LIVE, "j1", "kappa.daily_spend.v1", None, None,
        definition=definition,
    )  # fmt: skip


def test_freshness_sets_the_checkpoint_and_flush_intervals() -> None:
    config = job_configuration(fresh("30s").spec)
    assert config["execution.checkpointing.interval"] == "15s"
    # as many retained as span two observation ticks (a repair's recorded checkpoint stays)
    assert int(config["execution.checkpointing.num-retained"]) * 15 >= 60
    assert "'sink.buffer-flush.interval' = '15s'" in sink_ddl(
        fresh("30s").spec, physical_table="t", jdbc=JDBC
    )
    short = job_configuration(fresh("2s").spec)
    assert short["execution.checkpointing.interval"] == "1s"
    assert int(short["execution.checkpointing.num-retained"]) >= 60
    # none declared: the cluster's interval, the sink's one second
    assert not any(k.startswith("execution.checkpointing") for k in job_configuration(BASE.spec))
    assert "'sink.buffer-flush.interval' = '1s'" in sink_ddl(BASE.spec, physical_table="t", jdbc=JDBC)


def test_a_freshness_below_two_seconds_is_refused() -> None:
    with pytest.raises(ValidationError, match="below 2s"):
        fresh("1s")


def test_freshness_is_no_part_of_what_the_job_computes() -> None:
    assert fingerprint(fresh("10s")) == fingerprint(fresh("5m")) == fingerprint(BASE)
    # the job configuration folded into the canonical plan leaves the checkpoint settings out
    assert table_definitions([], job_configuration(fresh("10s").spec)) == table_definitions(
        [], job_configuration(BASE.spec)
    )


def test_changing_freshness_alone_is_a_restart_of_the_live_job() -> None:
    pipeline = fresh("30s")
    fp = fingerprint(pipeline)
    assert job_settings(pipeline) == {"freshness": "30s"}
    # a version deployed before settings were recorded ran without a declared freshness
    assert settings_changes(live(None, fp), pipeline) == ["freshness not declared -> 30s"]
    assert settings_changes(live({"freshness": "30s"}, fp), pipeline) == []
    # another fingerprint: its change makes a new version, which runs the spec's settings
    assert settings_changes(live({"freshness": None}, "other"), pipeline) == []
    change = settings_change(settings_changes(live(None, fp), pipeline))
    assert (change.kind, change.applied, change.events_to_read) == ("same_plan", "restart", 0)
    [p] = plan([pipeline], RegistryView([live({"freshness": "1m"}, fp)], {"daily_spend": 1}, {}, NOW))
    assert p.action == "reconfigure" and p.requests_run
    assert "freshness 1m -> 30s" in p.detail
    [same] = plan([pipeline], RegistryView([live({"freshness": "30s"}, fp)], {"daily_spend": 1}, {}, NOW))
    assert same.action == "none" and not same.requests_run


def test_event_time_lag_is_the_newest_committed_event_behind_the_logs_newest() -> None:
    stamps = {0: {9: 10_000, 4: 4_000}, 1: {19: 50_000}, 2: {29: 90_000, 20: 10_000}}

    def stamp(offsets: dict[int, int]) -> dict[int, int | None]:
        return {p: stamps[p].get(o) for p, o in offsets.items()}

    watermarks = {0: (0, 10), 1: (0, 20), 2: (20, 30)}
    # p0: committed up to offset 5 (its newest committed record is offset 4); p1: all of
    # it; p2: nothing committed, and the log starts at 20 (measured from the oldest held)
    lag = event_time_lag(watermarks, {0: 5, 1: 20, 2: None}, stamp)
    assert lag == {0: 6_000, 1: 0, 2: 80_000}


def test_a_version_past_its_freshness_fails_the_lag_check() -> None:
    spec = fresh("30s").spec
    groups = {"v1 (live)": "g1", "v2 (ready)": "g2"}
    lags = {
        ("g1", "payments.authorizations"): {0: 31_000, 1: 0},
        ("g2", "payments.authorizations"): {0: 5_000},
    }
    assert stale_versions(spec, groups, lags) == [
        "v1 (live) trails the log by 31s of event time (freshness 30s)"
    ]
    assert stale_versions(BASE.spec, groups, lags) == []
