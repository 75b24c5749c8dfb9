"""Alert receivers as configured, what each is sent, and when (pure: no receiver, no
registry; the receivers themselves: tests/integration/test_alerts.py)."""

from __future__ import annotations

import pytest
from dagster import EnvVar

from kappa_orch.config import PlatformConfig
from kappa_orch.errors import SpecError
from kappa_orch.lifecycle.alerting import Finding, due
from kappa_orch.registry.alerts import AlertState
from kappa_orch.resources.alerts import PAGERDUTY_EVENTS_URL, Alert, parse_receivers, payload


def test_receivers_are_read_from_one_setting() -> None:
    assert parse_receivers("none") == parse_receivers("") == parse_receivers(None) == []
    pd, slack, hook = parse_receivers(
        "pagerduty=KEY, slack=https://hooks.slack.com/services/T/B/X,webhook=http://alerts.local/in"
    )
    assert (pd.kind, pd.url, pd.routing_key) == ("pagerduty", PAGERDUTY_EVENTS_URL, "KEY")
    assert slack.kind == "slack" and hook.url == "http://alerts.local/in"
    # a receiver's name never shows its secret (a routing key, a webhook's path)
    assert "KEY" not in pd.name and "/services/" not in slack.name
    assert (
        parse_receivers("pagerduty=KEY@http://127.0.0.1:9/v2/enqueue")[0].url
        == "http://127.0.0.1:9/v2/enqueue"
    )


@pytest.mark.parametrize(
    ("setting", "problem"),
    [("email=ops@example.com", "is not one kappa_orch sends to"), ("slack=hooks.slack.com/x", "not an http")],
)
def test_a_receiver_kappa_orch_cannot_send_to_is_refused_with_the_fix(setting: str, problem: str) -> None:
    with pytest.raises(SpecError, match=problem) as refused:
        parse_receivers(setting)
    assert "webhook=" in refused.value.fix or "https://" in refused.value.fix
    with pytest.raises(SpecError, match=problem):
        PlatformConfig(alerts=setting)


def test_each_kind_is_sent_its_own_format() -> None:
    trigger = Alert(
        "trigger", "kappa_orch/prod/p/gate", "p", "gate", "v3 failed its gate: x" * 100, "WARN", "prod"
    )
    pd, slack, hook = parse_receivers("pagerduty=K,slack=https://h/s,webhook=https://h/w")
    body = payload(pd, trigger)
    assert body["event_action"] == "trigger" and body["dedup_key"] == "kappa_orch/prod/p/gate"
    assert body["payload"]["severity"] == "warning" and len(body["payload"]["summary"]) <= 1024
    resolve = Alert("resolve", "kappa_orch/prod/p/gate", "p", "gate", "v4 passed its gate")
    assert set(payload(pd, resolve)) == {"routing_key", "event_action", "dedup_key"}
    assert payload(slack, resolve)["text"].startswith(":large_green_circle:")
    assert payload(hook, trigger)["event"] == "trigger" and payload(hook, trigger)["severity"] == "WARN"


def test_an_alert_is_sent_on_a_change_and_to_whoever_missed_it() -> None:
    failing, passing = Finding("p", "c", False, "bad"), Finding("p", "c", True, "good")
    told = AlertState("k", "p", "c", True, "bad", [])
    missed = AlertState("k", "p", "c", True, "bad", ["slack:h#1"])
    resolved = AlertState("k", "p", "c", False, "good", [])
    assert due(None, failing) == ("trigger", None)
    assert due(None, passing) == (None, None)  # nothing was ever told: nothing to resolve
    assert due(told, failing) == (None, None)  # told once
    assert due(missed, failing) == ("trigger", {"slack:h#1"})
    assert due(told, passing) == ("resolve", None)
    assert due(resolved, passing) == (None, None)
    assert due(resolved, failing) == ("trigger", None)  # failing again: a new alert


def test_the_platform_hands_its_receivers_to_dagster_as_a_secret() -> None:
    config = PlatformConfig.from_env({"KAPPA_ALERTS": "pagerduty=K"}, defaults={"deployment": "prod"})
    resource = config.resources(dagster=True)["alerts"]
    # Dagster reads the receivers from the variable at run time, and never shows them
    assert resource.deployment == "prod" and isinstance(resource.receivers, EnvVar)
