"""Alert receivers: where a failing health check, gate or scheduled check is sent, and its
resolve when it passes again (issue 29, point 2). Which alert is sent when, and only once,
is decided from the registry (kappa_orch.lifecycle.alerting); this module only delivers.

Receivers are one setting (`PlatformConfig.alerts`, `KAPPA_ALERTS`), comma-separated:

- `webhook=<url>`: a JSON POST of the alert (event, dedup_key, pipeline, check, summary,
  severity, deployment, link, at);
- `slack=<url>`: a Slack (or compatible: Mattermost, Rocket.Chat) incoming webhook, one
  line of text per trigger and per resolve;
- `pagerduty=<routing key>[@<events url>]`: PagerDuty's Events API v2 (`trigger` and
  `resolve` under one dedup key; the URL defaults to PagerDuty's own).

They are sent with `requests`, not through dagster-slack (a bot token and chat.postMessage,
no incoming webhooks), dagster-pagerduty (the unmaintained pypd library, no endpoint or
timeout of one's own) or dagster-apprise (a 0.x community package about run status): none
of them models a check that fails, is told once, and resolves. Each receiver is sent to
at the same time, with its own timeout: a slow or failing one delays or stops no other,
and what it missed is sent again at the next evaluation.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests
from dagster import ConfigurableResource
from pydantic import Field

from kappa_orch.errors import SpecError

KINDS = ("webhook", "slack", "pagerduty")
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_CHARS = 1000  # PagerDuty keeps 1024 characters of a summary
SEVERITIES = {"ERROR": "error", "WARN": "warning"}


@dataclass(frozen=True)
class Receiver:
    """One place alerts go: its kind, URL, and (PagerDuty) routing key."""

    kind: str
    url: str
    routing_key: str | None = None

    @property
    def name(self) -> str:
        """How the receiver is named in logs and the registry (never its secret)."""
        host = self.url.split("//", 1)[-1].split("/", 1)[0]
        which = hashlib.sha256(f"{self.url}|{self.routing_key}".encode()).hexdigest()[:6]
        return f"{self.kind}:{host}#{which}"


@dataclass(frozen=True)
class Alert:
    """A check that fails (`trigger`) or passes again (`resolve`), under one dedup key."""

    action: str  # trigger | resolve
    dedup_key: str
    pipeline: str
    check: str
    summary: str
    severity: str = "ERROR"  # Dagster's AssetCheckSeverity name
    deployment: str = "local"
    link: str | None = None


def parse_receivers(text: str | None) -> list[Receiver]:
    """The receivers a setting names (see the module's docstring); `none` or empty: none."""
    if not text or text.strip().lower() == "none":
        return []
    receivers = []
    for entry in (e.strip() for e in text.split(",")):
        kind, _, target = entry.partition("=")
        kind = kind.strip().lower()
        if kind not in KINDS or not target:
            raise SpecError(
                f"alert receiver {entry.split('=', 1)[0]!r} is not one kappa_orch sends to",
                "write KAPPA_ALERTS as comma-separated webhook=<url>, slack=<url> or "
                "pagerduty=<routing key>[@<events url>], or none",
            )
        if kind == "pagerduty":
            key, _, url = target.partition("@")
            receivers.append(Receiver(kind, url or PAGERDUTY_EVENTS_URL, key))
        elif not target.startswith(("http://", "https://")):
            raise SpecError(
                f"the {kind} alert receiver's address is not an http(s) URL",
                f"write {kind}=https://host/path",
            )
        else:
            receivers.append(Receiver(kind, target))
    return receivers


def payload(receiver: Receiver, alert: Alert) -> dict[str, Any]:
    """What one receiver is sent for the alert, in its own format."""
    summary = alert.summary[:SUMMARY_CHARS]
    if receiver.kind == "pagerduty":
        body: dict[str, Any] = {
            "routing_key": receiver.routing_key,
            "event_action": alert.action,
            "dedup_key": alert.dedup_key,
        }
        if alert.action == "trigger":
            body["payload"] = {
                "summary": f"{alert.pipeline} {alert.check}: {summary}",
                "source": f"kappa_orch/{alert.deployment}",
                "severity": SEVERITIES.get(alert.severity, "error"),
                "component": alert.pipeline,
                "group": alert.deployment,
                "class": alert.check,
            }
            if alert.link:
                body["links"] = [{"href": alert.link, "text": "Dagster"}]
        return body
    if receiver.kind == "slack":
        mark = ":red_circle:" if alert.action == "trigger" else ":large_green_circle:"
        state = "failing" if alert.action == "trigger" else "passes again"
        link = f" <{alert.link}|Dagster>" if alert.link else ""
        return {
            "text": f"{mark} [{alert.deployment}] {alert.pipeline} {alert.check} {state}: {summary}{link}"
        }
    return {
        "event": alert.action,
        "dedup_key": alert.dedup_key,
        "pipeline": alert.pipeline,
        "check": alert.check,
        "summary": summary,
        "severity": alert.severity,
        "deployment": alert.deployment,
        "link": alert.link,
        "at": int(time.time() * 1000),
    }


class AlertResource(ConfigurableResource):  # type: ignore[type-arg]
    """Sends alerts to the configured receivers (see the module's docstring)."""

    receivers: str = Field("none", description="Comma-separated receivers (KAPPA_ALERTS).")
    timeout_s: float = Field(5.0, description="How long one receiver may take to answer.")
    deployment: str = Field("local", description="The deployment alerts come from (their source).")
    link: str | None = Field(None, description="Where an alert points: the Dagster UI.")

    def configured(self) -> list[Receiver]:
        return parse_receivers(self.receivers)

    def deliver(self, alert: Alert, only: set[str] | None = None) -> dict[str, str | None]:
        """Send the alert to every receiver (or those named in `only`), all at once:
        receiver name -> None when it took it, else why not."""
        targets = [r for r in self.configured() if only is None or r.name in only]
        if not targets:
            return {}
        with ThreadPoolExecutor(max_workers=len(targets)) as pool:
            answers = pool.map(lambda r: self._send(r, alert), targets)
            return {r.name: answer for r, answer in zip(targets, answers, strict=True)}

    def _send(self, receiver: Receiver, alert: Alert) -> str | None:
        try:
            answer = requests.post(receiver.url, json=payload(receiver, alert), timeout=self.timeout_s)
        except requests.RequestException as exc:
            return f"{type(exc).__name__}: {str(exc)[:200]}"
        if 200 <= answer.status_code < 300:
            return None
        return f"HTTP {answer.status_code}: {answer.text[:200]}"
