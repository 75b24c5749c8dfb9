"""The observation sensor's decision, from recorded Flink and Kafka answers."""

from __future__ import annotations

from pathlib import Path

from dagster import AssetMaterialization, AssetObservation

from kappa_orch.dagster.answers import StreamAnswers
from kappa_orch.dagster.assets import version_key
from kappa_orch.dagster.observe import observed_versions, stream_observations
from kappa_orch.dagster.version_observations import role_of
from kappa_orch.engine.protocol import Checkpoint
from kappa_orch.registry import store as registry
from kappa_orch.spec.load import load_pipelines

ASSETS = Path(__file__).resolve().parents[2] / "assets"
PIPELINES = load_pipelines(ASSETS)
BY_NAME = {p.name: p for p in PIPELINES}


def row(pipeline: str, version: int, state: str, job: str | None) -> registry.VersionRow:
    return registry.VersionRow(
        pipeline=pipeline,
        version=version,
        fingerprint="f",
        physical_table=f"t__v{version}",
        state=state,
        flink_job_id=job,
        group_id=f"kappa.{pipeline}.v{version}",
        deployed_offsets=None,
        error=None,
    )


def test_only_running_versions_of_known_pipelines_with_a_job_are_watched() -> None:
    rows = [
        row("daily_spend", 1, registry.LIVE, "j1"),
        row("daily_spend", 2, registry.FAILED, "j2"),
        row("daily_spend", 3, registry.DEPLOYING, None),
        row("gone_pipeline", 1, registry.LIVE, "j9"),
        row("auth_settlement", 1, registry.CATCHING_UP, "j3"),
    ]
    watched = observed_versions(PIPELINES, rows)
    assert [(p.name, r.version) for p, r in watched] == [("daily_spend", 1), ("auth_settlement", 1)]


def test_lag_per_partition_checkpoint_age_and_liveness() -> None:
    watched = [(BY_NAME["auth_settlement"], row("auth_settlement", 2, registry.CATCHING_UP, "j"))]
    answers = StreamAnswers(
        observed_at_ms=100_000,
        job_states={"j": "RUNNING"},
        checkpoints={"j": Checkpoint(7, 94_500, "file:///cp/7")},
        lags={
            ("kappa.auth_settlement.v2", "payments.authorizations"): {0: 10, 1: 0, 2: 5},
            ("kappa.auth_settlement.v2", "payments.settlements"): {0: 1, 1: 1, 2: 1},
        },
    )
    [observation] = stream_observations(watched, answers, live={"auth_settlement": 1})
    assert observation.asset_key == version_key(BY_NAME["auth_settlement"].spec)
    metadata = {k: v.value for k, v in observation.metadata.items()}
    # found: live and candidate observations shared one series, so their points interleaved
    assert metadata["candidate/lag_total"] == 18
    assert metadata["candidate/lag/payments.authorizations/0"] == 10
    assert metadata["candidate/lag/payments.settlements/2"] == 1
    assert "lag_total" not in metadata
    # identifiers are text, not plotted
    assert metadata["checkpoint_id"] == "7" and metadata["version"] == "2"
    assert metadata["candidate/checkpoint_age_s"] == 5.5
    assert metadata["job_state"] == "RUNNING"
    assert metadata["live"] is False
    assert "flink_exception" not in metadata


def test_a_failed_job_shows_its_exception() -> None:
    watched = [(BY_NAME["daily_spend"], row("daily_spend", 1, registry.LIVE, "j"))]
    answers = StreamAnswers(
        observed_at_ms=0,
        job_states={"j": "FAILED"},
        job_exceptions={"j": "java.sql.BatchUpdateException: relation does not exist"},
    )
    [observation] = stream_observations(watched, answers, live={"daily_spend": 1})
    metadata = {k: v.value for k, v in observation.metadata.items()}
    assert metadata["job_state"] == "FAILED"
    assert metadata["live"] is True
    assert "BatchUpdateException" in str(metadata["flink_exception"])
    assert metadata["lag_total"] == 0


def test_topic_offsets_retention_and_message_rate() -> None:
    from kappa_orch.dagster.answers import TopicAnswer
    from kappa_orch.dagster.assets import topic_key
    from kappa_orch.dagster.observe import topic_observations

    answers = StreamAnswers(
        observed_at_ms=70_000,
        topics={"payments.settlements": TopicAnswer({0: (10, 110), 1: (0, 50)}, retention_ms=604_800_000)},
    )
    [observation], cursor = topic_observations(answers, {"payments.settlements": [100, 60_000]})
    assert observation.asset_key == topic_key("payments.settlements")
    metadata = {k: v.value for k, v in observation.metadata.items()}
    assert metadata["end_offset_total"] == 160
    assert metadata["records_held"] == 150
    assert metadata["end_offset/0"] == 110
    assert metadata["earliest_offset/0"] == 10
    assert metadata["retention_hours"] == 168
    assert metadata["messages_per_s"] == 6.0  # 60 new records in 10 s
    assert cursor == {"payments.settlements": [160, 70_000]}
    # the first tick has no previous reading: no rate yet
    [first], _ = topic_observations(answers, {})
    assert "messages_per_s" not in first.metadata


def test_late_records_are_reported_per_operator_and_in_total() -> None:
    watched = [(BY_NAME["merchant_risk"], row("merchant_risk", 1, registry.LIVE, "j1"))]
    answers = StreamAnswers(
        observed_at_ms=0,
        job_states={"j1": "RUNNING"},
        late_records={"j1": {"GroupWindowAggregate[7]": 12, "WindowJoin[9]": 3}},
    )
    [observation] = stream_observations(watched, answers, {"merchant_risk": 1})
    assert observation.metadata["late_records_total"].value == 15
    assert observation.metadata["late_records/GroupWindowAggregate[7]"].value == 12
    # no counters read (e.g. a job that just started): no claim either way
    [silent] = stream_observations(watched, StreamAnswers(observed_at_ms=0), {"merchant_risk": 1})
    assert "late_records_total" not in silent.metadata


def test_the_alias_is_observed_when_it_changes() -> None:
    # found: a CLI rollback left the alias page showing the version before it
    from kappa_orch.dagster.alias_state import AliasState, alias_observations
    from kappa_orch.dagster.translator import DEFAULT_TRANSLATOR

    swap = {
        "id": 7,
        "from_version": 2,
        "to_version": 1,
        "reason": "rollback",
        "swapped_by": "ana",
        "git_commit": "0123456789ab",
        "run_id": "cli-rollback-1",
        "swapped_at": "2026-11-27 07:00:00+00:00",
    }
    state = AliasState("daily_spend", 1, "daily_spend__v1", 401, [swap])
    [event], cursor = alias_observations(PIPELINES, [state], {}, DEFAULT_TRANSLATOR)
    assert event.asset_key == DEFAULT_TRANSLATOR.alias_key(BY_NAME["daily_spend"].spec)
    assert event.metadata["live_version"].value == 1  # type: ignore[union-attr]
    assert event.metadata["dagster/row_count"].value == 401  # type: ignore[union-attr]
    assert "v2 -> v1 (rollback, by ana)" in event.metadata["last_swap"].value  # type: ignore[union-attr]
    # unchanged: nothing new; a new swap or row count: reported again
    assert alias_observations(PIPELINES, [state], cursor, DEFAULT_TRANSLATOR)[0] == []
    grown = AliasState("daily_spend", 1, "daily_spend__v1", 402, [swap])
    assert len(alias_observations(PIPELINES, [grown], cursor, DEFAULT_TRANSLATOR)[0]) == 1
    # a swap made by a Dagster run links to the run's page; a CLI swap has no page
    by_run = AliasState("daily_spend", 2, "daily_spend__v2", 402, [{**swap, "run_id": "8f2e1c4a-77"}, swap])
    [linked], _ = alias_observations(PIPELINES, [by_run], {}, DEFAULT_TRANSLATOR, "http://127.0.0.1:3000")
    # a swap made outside Dagster is the alias's materialization (what its page shows
    # first); one a Dagster run made was materialized by the run: only observed
    assert isinstance(event, AssetMaterialization) and event.description == "v2 -> v1 (rollback, by ana)"
    assert isinstance(linked, AssetObservation)
    assert linked.metadata["last_swap_run"].value == "http://127.0.0.1:3000/runs/8f2e1c4a-77"  # type: ignore[union-attr]
    history = str(linked.metadata["swap_history"].value)  # type: ignore[union-attr]
    assert "[8f2e1c4a](http://127.0.0.1:3000/runs/8f2e1c4a-77)" in history and "| cli-rollback-1 |" in history


def test_a_candidate_catching_up_reports_progress_speed_and_time_left() -> None:
    from kappa_orch.dagster.answers import TopicAnswer
    from kappa_orch.dagster.observe import catch_up_progress

    watched = [(BY_NAME["daily_spend"], row("daily_spend", 2, registry.CATCHING_UP, "j"))]
    topic = "payments.authorizations"
    held = {0: (0, 600), 1: (100, 500), 2: (0, 0)}  # 1,000 records held

    def answers(at_ms: int, lag: int) -> StreamAnswers:
        return StreamAnswers(
            observed_at_ms=at_ms,
            lags={("kappa.daily_spend.v2", topic): {0: lag, 1: 0, 2: 0}},
            topics={topic: TopicAnswer(held, None)},
        )

    first, cursor = catch_up_progress(watched, answers(10_000, 800), {})
    assert first == {("daily_spend", 2): {"catch_up_pct": 20.0}}  # no speed from one point
    second, _ = catch_up_progress(watched, answers(20_000, 300), cursor)
    assert second == {("daily_spend", 2): {"catch_up_pct": 70.0, "events_per_s": 50.0, "eta_s": 6.0}}
    [observation] = stream_observations(watched, answers(20_000, 300), {"daily_spend": 1}, progress=second)
    assert observation.metadata["candidate/eta_s"].value == 6.0  # type: ignore[union-attr]
    # a live version has no catch-up progress
    live = [(BY_NAME["daily_spend"], row("daily_spend", 1, registry.LIVE, "j"))]
    assert catch_up_progress(live, answers(20_000, 0), {})[0] == {}


def test_the_flink_job_is_a_link() -> None:
    watched = [(BY_NAME["daily_spend"], row("daily_spend", 1, registry.LIVE, "abc"))]
    [observation] = stream_observations(
        watched,
        StreamAnswers(observed_at_ms=0),
        {"daily_spend": 1},
        job_url=lambda j: f"http://flink/#/job/{j}",
    )
    assert observation.metadata["flink_job"].value == "http://flink/#/job/abc"  # type: ignore[union-attr]


def test_one_observation_per_pipeline_its_live_versions_with_each_version_by_role() -> None:
    # issue 29, point 5: a kept rollback target was plotted as candidate/*, and the page's
    # Overview showed whichever version was observed last (a live version read `ready`)
    spec = BY_NAME["daily_spend"]
    watched = [
        (spec, row("daily_spend", 1, registry.READY, "j1")),
        (spec, row("daily_spend", 2, registry.LIVE, "j2")),
        (spec, row("daily_spend", 3, registry.CATCHING_UP, "j3")),
    ]
    lags = {(f"kappa.daily_spend.v{v}", "payments.authorizations"): {0: v * 10} for v in (1, 2, 3)}
    answers = StreamAnswers(observed_at_ms=0, job_states={f"j{v}": "RUNNING" for v in (1, 2, 3)}, lags=lags)
    [observation] = stream_observations(watched, answers, live={"daily_spend": 2})
    metadata = {k: v.value for k, v in observation.metadata.items()}
    assert metadata["lag_total"] == 20 and metadata["candidate/lag_total"] == 30
    assert metadata["retained/lag_total"] == 10
    # the labels are the live version's
    assert metadata["version"] == "2" and metadata["state"] == registry.LIVE and metadata["live"] is True
    table = observation.metadata["versions"].value
    assert [(r.data["version"], r.data["role"]) for r in table.records] == [  # type: ignore[union-attr]
        ("v3", "candidate"),
        ("v2", "live"),
        ("v1", "retained"),
    ]
    # gated and not yet swapped in: still a candidate
    assert role_of(row("daily_spend", 4, registry.READY, "j4"), {"daily_spend": 2}) == "candidate"
    # failed versions are in the table too (the newest three), with no job to ask
    failed = [row("daily_spend", v, registry.FAILED, None) for v in (4, 5, 6, 7)]
    failed.append(row("merchant_risk", 9, registry.FAILED, None))  # another pipeline's
    [observation] = stream_observations(watched, answers, live={"daily_spend": 2}, failed=failed)
    table = observation.metadata["versions"].value
    assert [(r.data["version"], r.data["role"], r.data["job_state"]) for r in table.records] == [  # type: ignore[union-attr]
        ("v7", "failed", "-"),
        ("v6", "failed", "-"),
        ("v5", "failed", "-"),
        ("v3", "candidate", "RUNNING"),
        ("v2", "live", "RUNNING"),
        ("v1", "retained", "RUNNING"),
    ]
