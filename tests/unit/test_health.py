"""Pure decisions about lost jobs, column changes and slots: which versions are degraded
or abandoned, what the plan does about them, what the errors say."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from kappa_orch.dagster.health import job_health
from kappa_orch.engine.flink.resource import root_cause
from kappa_orch.lifecycle.deploy_checks import slot_shortage
from kappa_orch.plan.decide import RegistryView, abandoned, column_diff, degraded, plan
from kappa_orch.registry import store as registry
from kappa_orch.spec.fingerprint import fingerprint
from kappa_orch.spec.load import load_pipelines
from kappa_orch.stack.config import StackConfig
from kappa_orch.stack.flink import FlinkService

ASSETS = Path(__file__).resolve().parents[2] / "assets"
PIPELINE = next(p for p in load_pipelines(ASSETS) if p.name == "daily_spend")
FP = fingerprint(PIPELINE)
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def row(version: int, fp: str, state: str, job: str | None = None) -> registry.VersionRow:
    return registry.VersionRow(
        "daily_spend", version, fp, f"daily_spend__v{version}", state,
        job if job is not None else f"j{version}", f"kappa.daily_spend.v{version}", None, None,
        replaced_at=NOW if state == registry.READY else None,
        definition={"columns": [["day", "DATE"], ["total", "DOUBLE"]]},
    )  # fmt: skip


def test_a_live_or_ready_version_without_an_alive_job_is_degraded() -> None:
    for state in ("FAILED", "CANCELED", "UNKNOWN", "FINISHED"):
        assert degraded(row(1, FP, registry.LIVE), state) == f"v1 is live but its Flink job j1 is {state}"
        assert degraded(row(1, FP, registry.READY), state) is not None
    for state in ("RUNNING", "RESTARTING", "CREATED", "INITIALIZING"):
        assert degraded(row(1, FP, registry.LIVE), state) is None
    # not asked (Flink unreachable) is no verdict; other states have no job to keep
    assert degraded(row(1, FP, registry.LIVE), None) is None
    assert degraded(row(1, FP, registry.CATCHING_UP), "FAILED") is None
    assert degraded(row(1, FP, registry.RETIRED), "UNKNOWN") is None


def test_only_a_superseded_candidate_nobody_will_gate_is_abandoned() -> None:
    old = row(2, "old", registry.CATCHING_UP)
    assert abandoned(old, "UNKNOWN", FP, live=1)
    assert not abandoned(old, "RUNNING", FP, live=1, claimed=True)  # a run is gating it
    assert abandoned(old, "RUNNING", FP, live=1)  # its run ended: the job holds a slot for nothing
    assert not abandoned(row(2, FP, registry.CATCHING_UP), "UNKNOWN", FP, live=1)  # the spec's own: reprocess
    assert not abandoned(row(2, "old", registry.READY), "UNKNOWN", FP, live=1)  # degraded, not abandoned


def test_the_plan_repairs_a_degraded_live_version_and_is_not_in_sync() -> None:
    rows = [row(1, "old", registry.READY), row(2, FP, registry.LIVE), row(3, "older", registry.CHECKING)]
    [p] = plan([PIPELINE], RegistryView(rows, {"daily_spend": 2}, {}, NOW, {"j1": "RUNNING", "j2": "FAILED"}))
    assert p.action == "repair"
    assert p.detail.startswith("v2 is live but its Flink job j2 is FAILED")
    assert (p.repair, p.abandon) == ([2], [3])
    # without job states the plan does not judge health (the registry alone cannot)
    [blind] = plan([PIPELINE], RegistryView(rows, {"daily_spend": 2}, {}, NOW))
    assert (blind.action, blind.repair, blind.abandon) == ("none", [], [])


def test_a_degraded_ready_version_is_repaired_beside_a_reprocess() -> None:
    rows = [row(1, "old", registry.READY), row(2, "older", registry.LIVE)]
    [p] = plan(
        [PIPELINE], RegistryView(rows, {"daily_spend": 2}, {}, NOW, {"j1": "UNKNOWN", "j2": "RUNNING"})
    )
    assert (p.action, p.repair) == ("reprocess", [1])


def test_column_changes_against_the_live_version() -> None:
    live = [["day", "DATE"], ["total", "DOUBLE"], ["n", "INT"]]
    spec = [["day", "DATE"], ["total", "DECIMAL(12, 2)"], ["merchant", "STRING"]]
    assert column_diff(live, spec) == ["+ merchant STRING", "- n INT", "~ total DOUBLE -> DECIMAL(12, 2)"]
    assert column_diff(live, live) == []
    assert column_diff(None, spec) == []  # a version from before definitions: unknown, not "all new"


def test_slot_shortage_names_the_numbers_and_the_holders() -> None:
    holders = [row(1, "old", registry.READY), row(2, FP, registry.LIVE)]
    assert slot_shortage("daily_spend", 3, (1, 2), holders) is None
    error = slot_shortage("daily_spend", 3, (0, 2), holders)
    assert error is not None
    assert "needs 1 task slot(s) and the Flink cluster has 0 of 2 free" in error.problem
    assert "daily_spend v1 (ready, replaced 2026-11-26 12:00 UTC), daily_spend v2 (live)" in error.problem
    assert error.fix is not None and "kappa-orch retire daily_spend 1" in error.fix
    assert "retire.grace" in error.fix


def test_root_cause_is_the_innermost_cause_not_the_restart_strategy() -> None:
    trace = (
        "org.apache.flink.runtime.JobException: Recovery is suppressed by "
        "FixedDelayRestartBackoffTimeStrategy(maxNumberRestartAttempts=3, backoffTimeMS=5000)\n"
        "\tat org.apache.flink.runtime.executiongraph.failover.ExecutionFailureHandler.handleFailure\n"
        "Caused by: java.util.concurrent.CompletionException: org.apache.flink.runtime.jobmanager."
        "scheduler.NoResourceAvailableException: Could not acquire the minimum required resources.\n"
        "\tat java.base/java.util.concurrent.CompletableFuture.encodeThrowable\n"
        "Caused by: org.apache.flink.runtime.jobmanager.scheduler.NoResourceAvailableException: "
        "Could not acquire the minimum required resources.\n"
    )
    assert root_cause(trace) == (
        "org.apache.flink.runtime.jobmanager.scheduler.NoResourceAvailableException: "
        "Could not acquire the minimum required resources."
    )
    assert root_cause("java.lang.RuntimeException: boom\n\tat x") == "java.lang.RuntimeException: boom"
    assert root_cause(None) is None and root_cause("") is None


def test_job_health_check_verdict() -> None:
    rows = [row(1, "old", registry.READY), row(2, FP, registry.LIVE)]
    ok = job_health(PIPELINE, rows, {"daily_spend": 2}, {"j1": "RUNNING", "j2": "RUNNING"}, {})
    assert ok.passed and ok.summary == "2 live/ready version(s), every job alive"
    bad = job_health(PIPELINE, rows, {"daily_spend": 2}, {"j1": "RUNNING", "j2": "FAILED"}, {"j2": "boom"})
    assert not bad.passed
    assert (
        "v2 is live but its Flink job j2 is FAILED (live: the alias serves a table nobody updates)"
        in bad.summary
    )
    assert bad.exceptions == {2: "boom"}
    # a job not asked (the sensor's time budget ran out) is no verdict
    assert job_health(PIPELINE, rows, {"daily_spend": 2}, {"j1": "RUNNING"}, {}).passed


def test_restart_strategy_outlives_a_lost_taskmanager(tmp_path: Path) -> None:
    settings = FlinkService(StackConfig(home=tmp_path)).settings()
    assert settings["restart-strategy.type"] == "exponential-delay"
    assert settings["restart-strategy.exponential-delay.attempts-before-reset-backoff"] == 2**31 - 1
    assert settings["restart-strategy.exponential-delay.max-backoff"] == "30s"


def test_only_non_structural_checks_can_be_accepted_and_only_with_a_reason() -> None:
    import pytest

    from kappa_orch.errors import KappaError
    from kappa_orch.lifecycle.gate import Outcome, accepted, check_acceptance

    check_acceptance(["expectations", "parity_with_live"], "the old table was wrong")
    check_acceptance([], None)
    for structural in ("unique_primary_key", "input_balance", "no_late_records"):
        with pytest.raises(KappaError, match="cannot be accepted"):
            check_acceptance([structural], "because")
    with pytest.raises(KappaError, match="unknown check"):
        check_acceptance(["expectation"], "typo")
    with pytest.raises(KappaError, match="needs a reason"):
        check_acceptance(["expectations"], "  ")
    outcomes = [Outcome("expectations", False, "2 rows"), Outcome("parity_with_live", False, "-40%")]
    marked = accepted(outcomes, ["expectations"], "ana", "refunds")
    assert [(o.accepted, o.lets_through) for o in marked] == [("ana: refunds", True), (None, False)]
    # a passed check is not marked, even when named
    assert accepted([Outcome("expectations", True, "ok")], ["expectations"], "ana", "x")[0].accepted is None


def test_a_missing_table_or_alias_degrades_and_asks_for_repair() -> None:
    rows = [row(1, "old", registry.READY), row(2, FP, registry.LIVE)]
    states = {"j1": "RUNNING", "j2": "RUNNING"}
    assert degraded(rows[0], "RUNNING", table_present=False) == (
        "v1 is ready but its table daily_spend__v1 is missing (dropped by hand?)"
    )
    [p] = plan(
        [PIPELINE], RegistryView(rows, {"daily_spend": 2}, {}, NOW, states, frozenset({("daily_spend", 1)}))
    )
    assert (p.action, p.repair) == ("none", [1])  # the live version serves; v1 is repaired aside
    [p] = plan(
        [PIPELINE],
        RegistryView(rows, {"daily_spend": 2}, {}, NOW, states, frozenset(), frozenset({"daily_spend"})),
    )
    assert p.action == "repair" and p.detail == "the alias view analytics.daily_spend of live v2 is missing"


def test_a_version_is_rebuilt_from_its_own_recorded_definition() -> None:
    import dataclasses

    import pytest

    from kappa_orch.errors import KappaError
    from kappa_orch.lifecycle.deploy import version_definition
    from kappa_orch.lifecycle.repair import pipeline_of_version

    current = PIPELINE.model_copy(update={"sql_text": PIPELINE.sql_text.replace("'approved'", "'declined'")})
    assert fingerprint(current) != FP
    recorded = dataclasses.replace(row(1, FP, registry.READY), definition=version_definition(PIPELINE))
    rebuilt = pipeline_of_version(recorded, current)
    assert fingerprint(rebuilt) == FP and rebuilt.sql_text == PIPELINE.sql_text
    # the current spec is used as is when it is the version's own
    assert (
        pipeline_of_version(dataclasses.replace(recorded, fingerprint=fingerprint(current)), current)
        is current
    )
    with pytest.raises(KappaError, match="has no recorded spec"):
        pipeline_of_version(dataclasses.replace(recorded, definition=None), current)
    with pytest.raises(KappaError, match="built by an older kappa_orch"):
        pipeline_of_version(dataclasses.replace(recorded, fingerprint="0123456789abcdef"), current)
