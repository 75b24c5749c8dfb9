"""A change of how the live job runs, not of what it computes (issue 26, point 8): the
spec's `freshness` sets the job's checkpoint interval and its sink's flush interval, which
the fingerprint and the compiled plan's operator ids leave out. Changing it alone is a
same-plan change: the live job stops with a savepoint and the same version starts again
from it with the new settings: same table, same alias, no replay, no new version.

The settings a version's job runs with are recorded in its definition (`job_settings`);
the plan compares them with the spec's (plan.decide: action `reconfigure`), and every
entry point (`reprocess`, `plan --apply`, the reprocess sensor) carries it out here."""

from __future__ import annotations

from kappa_orch.lifecycle.deploy import deploy
from kappa_orch.lifecycle.restore import stop_keeping_state
from kappa_orch.lifecycle.services import Services
from kappa_orch.plan.change import job_settings, settings_changes
from kappa_orch.registry import store as registry
from kappa_orch.registry import transitions
from kappa_orch.spec.model import LoadedPipeline


def reconfigure(pipeline: LoadedPipeline, services: Services) -> bool:
    """Restart the live version's job from a savepoint with the spec's settings when they
    changed (True), else nothing (False): the same redeploy a repair makes, resuming from
    the recorded savepoint; the caller holds the pipeline's claim."""
    name = pipeline.name
    with registry.session(services.warehouse) as conn:
        version = registry.live_versions(conn).get(name)
        live = next((r for r in registry.pipeline_versions(conn, name) if r.version == version), None)
    changes = settings_changes(live, pipeline)
    if live is None or not changes:
        return False
    why = "; ".join(changes)
    services.log(f"{name}: v{live.version} restarts from a savepoint with its new settings ({why})")
    stop_keeping_state(name, live, f"its settings changed ({why})", services)
    deploy(pipeline, services, holds_claim=True)
    with services.warehouse.begin() as conn:
        row = next(r for r in registry.pipeline_versions(conn, name) if r.version == live.version)
        definition = {**(row.definition or {}), "job_settings": job_settings(pipeline)}
        transitions.record(conn, name, live.version, definition=definition)
    return True
