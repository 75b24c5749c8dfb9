"""A change that waits for a person before its new version starts (issue 26, point 7).

Before a reprocess deploys a new version beside the live one, the change is classified
(lifecycle.change); when the spec's `approval` settings say so (more records to read than
`approval.above_events`, or a live column dropped) it waits: the request is recorded under
the change's plan id and the run stops with the command that approves exactly that id.
An id binds the live and the candidate's compiled plans, so an approval is never carried
onto another change."""

from __future__ import annotations

from kappa_orch.errors import AwaitingApproval
from kappa_orch.lifecycle.change import change_of, records_held
from kappa_orch.lifecycle.services import Services
from kappa_orch.plan.change import Change, needs_approval
from kappa_orch.registry import approvals
from kappa_orch.registry import store as registry
from kappa_orch.spec.model import LoadedPipeline


def approve_command(plan_id: str) -> str:
    return f"kappa-orch plan --apply --approve {plan_id}"


def approved_change(
    pipeline: LoadedPipeline, services: Services, *, approve: str | None, by: str
) -> Change | None:
    """The change a new version of the spec makes, when it may go ahead; None when no new
    version is due (none live yet, or its fingerprint already has one). Raises
    AwaitingApproval when it waits. `approve`: the plan id the caller approves now."""
    name, spec = pipeline.name, pipeline.spec
    with registry.session(services.warehouse) as conn:
        rows = registry.pipeline_versions(conn, name)
        live_version = registry.live_versions(conn).get(name)
    live = next((r for r in rows if r.version == live_version), None)
    if live is None or any(r.fingerprint == pipeline.fingerprint for r in rows):
        return None
    change = change_of(pipeline, live, services, records_held(services.kafka, pipeline))
    reasons = needs_approval(change, spec.approval.above_events, spec.approval.dropping_columns)
    if not reasons or change.plan_id is None:
        return change
    asked = approvals.Request(
        name,
        change.plan_id,
        pipeline.fingerprint,
        change.kind,
        [*reasons, *change.reasons],
        {
            "events_to_read": change.events_to_read,
            "rows_to_derive": change.rows_to_derive,
            "estimate_s": change.estimate_s,
        },
    )
    with registry.session(services.warehouse) as conn:
        approvals.request(conn, asked)
        if approve == change.plan_id:
            approvals.approve(conn, change.plan_id, by)
        [found] = approvals.requests(conn, plan_id=change.plan_id, pipeline=name)
    if found.approved_at is not None:
        services.log(f"{name}: plan {change.plan_id} ({change.kind}) was approved by {found.approved_by}")
        return change
    raise AwaitingApproval(
        f"{name}: the change waits for approval: {'; '.join(reasons)} ({change.kind}; plan {change.plan_id})",
        "review it with `kappa-orch plan`, then approve exactly this change: "
        + approve_command(change.plan_id),
    )
