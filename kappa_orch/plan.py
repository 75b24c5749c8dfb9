"""What each pipeline needs, from the registry alone: the plan behind `kappa-orch plan`,
the reprocess sensor and the retire sensor (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kappa_orch import registry
from kappa_orch.claims import held_claims
from kappa_orch.reprocess import due_for_retirement
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.fingerprint import fingerprint
from kappa_orch.spec.model import LoadedPipeline

IN_FLIGHT = frozenset({registry.DEPLOYING, registry.CATCHING_UP, registry.CHECKING})


@dataclass(frozen=True)
class PipelinePlan:
    pipeline: str
    live_version: int | None
    live_fingerprint: str | None
    desired_fingerprint: str
    action: str  # none | deploy | reprocess | blocked
    detail: str
    retire: list[int] = field(default_factory=list)

    @property
    def requests_run(self) -> bool:
        return self.action in ("deploy", "reprocess")


def plan(
    pipelines: Sequence[LoadedPipeline],
    rows: Sequence[registry.VersionRow],
    live: dict[str, int],
    claims: dict[str, str],
    now: datetime,
) -> list[PipelinePlan]:
    due = due_for_retirement(list(pipelines), list(rows), live, now)
    plans = []
    for pipeline in pipelines:
        name = pipeline.name
        desired = fingerprint(pipeline)
        mine = [r for r in rows if r.pipeline == name]
        live_row = next((r for r in mine if r.version == live.get(name)), None)
        candidate = next((r for r in mine if r.fingerprint == desired), None)
        retire = [r.version for r in due if r.pipeline == name]
        if live_row is not None and live_row.fingerprint == desired:
            action, detail = "none", f"v{live_row.version} serves the spec's fingerprint"
        elif name in claims:
            action, detail = "blocked", f"a reprocess is in flight ({claims[name]})"
        elif candidate is not None and candidate.state == registry.FAILED:
            reason = (candidate.error or "").splitlines()[0][:200] if candidate.error else "failed"
            action, detail = "blocked", f"candidate v{candidate.version} failed, not retried: {reason}"
        elif candidate is not None and candidate.state == registry.RETIRED:
            action, detail = "blocked", f"fingerprint {desired} was v{candidate.version}, now retired"
        elif live_row is None:
            action, detail = "deploy", "no live version yet"
        else:
            if candidate is None:
                detail = f"spec changed: v{live_row.version} runs {live_row.fingerprint}"
            else:
                detail = f"candidate v{candidate.version} is {candidate.state}"
            action = "reprocess"
        plans.append(
            PipelinePlan(
                pipeline=name,
                live_version=live_row.version if live_row else None,
                live_fingerprint=live_row.fingerprint if live_row else None,
                desired_fingerprint=desired,
                action=action,
                detail=detail,
                retire=retire,
            )
        )
    return plans


def current_plan(pipelines: Sequence[LoadedPipeline], warehouse: WarehouseResource) -> list[PipelinePlan]:
    """The plan for the registry as it is now (reads the warehouse)."""
    with warehouse.begin() as conn:
        registry.migrate(conn)
        rows = registry.all_versions(conn)
        live = registry.live_versions(conn)
    return plan(pipelines, rows, live, held_claims(warehouse), datetime.now(UTC))
