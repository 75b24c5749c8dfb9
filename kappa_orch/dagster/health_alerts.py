"""The health checks' verdicts sent as alerts (issue 29, point 2): every observed verdict
of a pipeline with running versions goes to lifecycle.alerting, which sends a failure once
and its resolve once (the registry remembers what each receiver was told)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kappa_orch.dagster.answers import StreamAnswers
from kappa_orch.dagster.stream_checks import verdicts_of
from kappa_orch.errors import KappaError
from kappa_orch.lifecycle.alerting import Finding, tell
from kappa_orch.progress import Log
from kappa_orch.registry import store as registry
from kappa_orch.resources.alerts import AlertResource
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.model import LoadedPipeline


def health_findings(
    pipelines: Sequence[LoadedPipeline],
    rows: Sequence[registry.VersionRow],
    live: dict[str, int],
    answers: StreamAnswers,
    state: dict[str, Any],
) -> list[Finding]:
    """The observed health verdicts of every pipeline with running versions (pure; `state`:
    the observation sensor's cursor, which knows since when a service is down)."""
    found = []
    for pipeline in pipelines:
        if not any(r.pipeline == pipeline.name and r.state in registry.RUNNING_STATES for r in rows):
            continue
        for verdict in verdicts_of(pipeline, rows, live, answers, state["outages"]):
            if verdict.observed:
                severity = verdict.severity.name
                found.append(Finding(pipeline.name, verdict.check, verdict.passed, verdict.summary, severity))
    return found


def alert_health(
    warehouse: WarehouseResource, alerts: AlertResource, findings: Sequence[Finding], log: Log
) -> None:
    """Send what the findings call for; an alert that cannot be sent is told to the log."""
    try:
        tell(warehouse, alerts, findings, log)
    except KappaError as exc:
        log(f"health alerts not sent: {exc.problem}")
