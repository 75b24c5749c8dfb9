"""Failing checks are sent to alert receivers once, and resolved once (issue 29, point 2).

Three real HTTP receivers on this machine, one of each kind kappa_orch sends to: PagerDuty's
Events API v2 (answering at once), a Slack incoming webhook (slower than the timeout at
first) and a generic JSON webhook (refusing with HTTP 500 at first). The de-duplication
state is the registry's, in the stack's PostgreSQL."""

from __future__ import annotations

import time
import uuid

import pytest

from kappa_orch.lifecycle.alerting import Finding, tell
from kappa_orch.registry import alerts as registry_alerts
from kappa_orch.registry import store as registry
from kappa_orch.resources.alerts import AlertResource
from kappa_orch.resources.warehouse import WarehouseResource
from tests.integration.receivers import Receiver, receiving

pytestmark = pytest.mark.integration


def test_a_failing_check_is_sent_once_and_resolved_once(warehouse: WarehouseResource) -> None:
    pipeline = f"alerting_{uuid.uuid4().hex[:8]}"
    with (
        receiving(Receiver()) as pagerduty,
        receiving(Receiver(delay_s=3.0)) as slack,
        receiving(Receiver(status=500)) as webhook,
    ):
        alerts = AlertResource(
            receivers=(
                f"pagerduty=ROUTINGKEY@http://127.0.0.1:{pagerduty.port}/v2/enqueue,"
                f"slack=http://127.0.0.1:{slack.port}/hook,"
                f"webhook=http://127.0.0.1:{webhook.port}/alerts"
            ),
            timeout_s=1.0,
            deployment="ci",
            link="http://127.0.0.1:3000",
        )
        failing = Finding(pipeline, "flink_job_running", False, "v2's job is gone; repair: kappa-orch repair")
        told = tell(warehouse, alerts, [failing])
        # every receiver was sent the failure at once: one answered, one was too slow, one refused
        assert len(pagerduty.received) == 1 and len(webhook.received) == 1
        [trigger] = pagerduty.received
        assert trigger["event_action"] == "trigger" and trigger["routing_key"] == "ROUTINGKEY"
        assert trigger["dedup_key"] == f"kappa_orch/ci/{pipeline}/flink_job_running"
        assert (
            trigger["payload"]["severity"] == "error" and "v2's job is gone" in trigger["payload"]["summary"]
        )
        assert "not taken by" in told[0] and "HTTP 500" in told[0] and "ReadTimeout" in told[0], told
        with registry.session(warehouse) as conn:
            state = registry_alerts.read(conn, trigger["dedup_key"])
        assert state is not None and state.firing and len(state.undelivered) == 2

        # the next evaluation: still failing; only the two that missed it are sent it again
        slack.delay_s, webhook.status = 0.0, 200
        time.sleep(3.0)  # the slow receiver's first request ends
        tell(warehouse, alerts, [failing])
        assert len(pagerduty.received) == 1
        assert (
            webhook.received[-1]["event"] == "trigger"
            and webhook.received[-1]["check"] == "flink_job_running"
        )
        assert (
            slack.received[-1]["text"].startswith(":red_circle: [ci]")
            and pipeline in slack.received[-1]["text"]
        )
        sent = (len(pagerduty.received), len(slack.received), len(webhook.received))
        # and again: everyone has it, nothing is sent
        assert tell(warehouse, alerts, [failing]) == []
        assert (len(pagerduty.received), len(slack.received), len(webhook.received)) == sent

        # it passes again: one resolve to each, once
        passing = Finding(pipeline, "flink_job_running", True, "1 live/ready version(s), every job alive")
        tell(warehouse, alerts, [passing])
        assert pagerduty.received[-1] == {
            "path": "/v2/enqueue",
            "routing_key": "ROUTINGKEY",
            "event_action": "resolve",
            "dedup_key": trigger["dedup_key"],
        }
        assert slack.received[-1]["text"].startswith(":large_green_circle:")
        assert webhook.received[-1]["event"] == "resolve"
        assert tell(warehouse, alerts, [passing]) == []
        assert (len(pagerduty.received), len(slack.received), len(webhook.received)) == (2, 3, 3)
