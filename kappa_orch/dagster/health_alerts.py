"""The health checks' verdicts sent as alerts (issue 29, point 2): every observed verdict
of a pipeline with running versions goes to lifecycle.alerting, which sends a failure once
and its resolve once (the registry remembers what each receiver was told)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dagster import DagsterInstance

from kappa_orch.dagster.answers import StreamAnswers
from kappa_orch.dagster.repairs import with_repairs
from kappa_orch.dagster.stream_checks import Verdict, verdicts_of
from kappa_orch.errors import KappaError
from kappa_orch.lifecycle.alerting import Finding, tell
from kappa_orch.progress import Log
from kappa_orch.registry import store as registry
from kappa_orch.resources.alerts import AlertResource
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.model import LoadedPipeline


def observed_verdicts(
    pipelines: Sequence[LoadedPipeline],
    rows: Sequence[registry.VersionRow],
    live: dict[str, int],
    answers: StreamAnswers,
    outages: dict[str, int],
    instance: DagsterInstance | None = None,
) -> dict[str, list[Verdict]]:
    """The observed health verdicts of every pipeline with running versions, computed once
    per tick for both the checks' events and the alerts (`outages`: since when each
    service has not answered); with the Dagster `instance`, a failing `flink_job_running`
    names the repair run in progress (dagster.repairs)."""
    found = {}
    for pipeline in pipelines:
        if any(r.pipeline == pipeline.name and r.state in registry.RUNNING_STATES for r in rows):
            verdicts = verdicts_of(pipeline, rows, live, answers, outages)
            found[pipeline.name] = [v for v in verdicts if v.observed]
    return with_repairs(instance, found) if instance is not None else found


def health_findings(verdicts: Mapping[str, Sequence[Verdict]]) -> list[Finding]:
    """The verdicts as alert findings (pure)."""
    return [
        Finding(name, v.check, v.passed, v.summary, v.severity.name)
        for name, observed in verdicts.items()
        for v in observed
    ]


def alert_health(
    warehouse: WarehouseResource, alerts: AlertResource, findings: Sequence[Finding], log: Log
) -> None:
    """Send what the findings call for; an alert that cannot be sent is told to the log."""
    try:
        tell(warehouse, alerts, findings, log)
    except KappaError as exc:
        log(f"health alerts not sent: {exc.problem}")
