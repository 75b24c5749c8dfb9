"""Alerts from check verdicts (issue 29, point 2): a health check, gate or scheduled check
that fails is sent to the configured receivers once (de-duplicated by the registry, not by
the process that saw it), and a resolve is sent once when it passes again. A receiver that
did not take an alert (slow, down, refusing) is sent it again at the next evaluation;
the others are not sent it twice. Delivery: kappa_orch.resources.alerts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kappa_orch.progress import Log
from kappa_orch.registry import alerts as registry_alerts
from kappa_orch.registry import store as registry
from kappa_orch.registry.schema import lock
from kappa_orch.resources.alerts import Alert, AlertResource
from kappa_orch.resources.warehouse import WarehouseResource


@dataclass(frozen=True)
class Finding:
    """One check's verdict on one pipeline, as an alert would tell it."""

    pipeline: str
    check: str
    passed: bool
    summary: str
    severity: str = "ERROR"


def dedup_key(deployment: str, finding: Finding) -> str:
    return f"kappa_orch/{deployment}/{finding.pipeline}/{finding.check}"


def due(state: registry_alerts.AlertState | None, finding: Finding) -> tuple[str | None, set[str] | None]:
    """What to send for the finding given what was last told (pure): the action, and the
    receivers to send it to (None: all); (None, None): nothing."""
    was_firing = state is not None and state.firing
    if not finding.passed and not was_firing:
        return "trigger", None
    if finding.passed and was_firing:
        return "resolve", None
    if state is not None and state.undelivered:
        return ("trigger" if was_firing else "resolve"), set(state.undelivered)
    return None, None


def tell(
    warehouse: WarehouseResource,
    alerts: AlertResource,
    findings: Sequence[Finding],
    log: Log = lambda line: None,
) -> list[str]:
    """Send what the findings call for (see the module's docstring); what was sent, in words.
    Every state is read in one query; only a finding that calls for a send takes its key's
    lock (and is decided again under it: another process may have told it meanwhile)."""
    if not alerts.configured():
        return []
    keyed = {dedup_key(alerts.deployment, f): f for f in findings}
    with registry.session(warehouse) as conn:
        states = registry_alerts.read_all(conn, list(keyed))
    told = []
    for key, finding in keyed.items():
        if due(states.get(key), finding)[0] is None:
            continue  # the usual case: nothing changed since the last evaluation
        line = _told(warehouse, alerts, key, finding)
        if line is not None:
            log(line)
            told.append(line)
    return told


def _told(warehouse: WarehouseResource, alerts: AlertResource, key: str, finding: Finding) -> str | None:
    """Send one finding's alert under its key's lock; what was sent, in words (None: it was
    told meanwhile)."""
    with registry.session(warehouse) as conn:
        lock(conn, f"alert:{key}")  # one process tells a key at a time
        action, only = due(registry_alerts.read(conn, key), finding)
        if action is None:
            return None
        what = (finding.pipeline, finding.check, finding.summary, finding.severity)
        alert = Alert(action, key, *what, deployment=alerts.deployment, link=alerts.link)
        answers = alerts.deliver(alert, only)
        missed = sorted(name for name, problem in answers.items() if problem)
        told_now = (key, finding.pipeline, finding.check, action == "trigger", finding.summary, missed)
        registry_alerts.save(conn, registry_alerts.AlertState(*told_now))
    taken = len(answers) - len(missed)
    line = f"alert {action} {finding.pipeline} {finding.check}: sent to {taken} receiver(s)"
    if missed:
        why = ", ".join(f"{n} ({answers[n]})" for n in missed)
        line += f"; not taken by {why} (sent again next time)"
    return line
