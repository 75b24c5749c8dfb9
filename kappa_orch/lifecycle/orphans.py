"""Jobs kappa_orch started that the registry does not know.

A run killed between submitting a version's job and recording its id leaves that job
running: it holds a slot and writes into the version's table, and `status` would not
show it. Every version's job has a deterministic name (`<deployment>/kappa:<p>:v<N>`),
so such a job is found on the cluster. A deploy of the version adopts it (records its
id instead of submitting another); any other (a second job of a version whose job is
recorded, a job of a retired, failed or unknown version) is cancelled by `repair` and
the next deploy, and named by `status` meanwhile."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from kappa_orch.engine.protocol import ACTIVE_JOB_STATES, EngineJob
from kappa_orch.lifecycle.services import Services
from kappa_orch.registry import store as registry
from kappa_orch.registry import transitions

_VERSION_JOB = re.compile(r"kappa:(?P<pipeline>[a-z][a-z0-9_]*):v(?P<version>\d+)")
# a job of a version being deployed, younger than this, may be the one a live run has
# just submitted and not recorded yet
ORPHAN_GRACE_S = 60.0


@dataclass(frozen=True)
class Orphan:
    """A running job named like a version's job, which no registry row records."""

    job: EngineJob
    pipeline: str
    version: int
    # its version runs and has no job recorded (a deploy or repair killed after submitting):
    # the job is that version's
    adoptable: bool

    def describe(self) -> str:
        return f"job {self.job.job_id} ({self.pipeline} v{self.version}, {self.job.state})"


def find_orphans(
    jobs: Sequence[EngineJob],
    rows: Sequence[registry.VersionRow],
    *,
    prefix: str,
    now_ms: int | None = None,
    grace_s: float = ORPHAN_GRACE_S,
) -> list[Orphan]:
    """The alive jobs named `<prefix>kappa:<p>:v<N>` (the deployment's: FlinkResource.job_name)
    that no row records (pure). A job of a version being deployed may be that deploy's, not
    recorded yet: it counts once older than `grace_s`. Of several for one such version, the
    newest is the adoptable one."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    known = {r.flink_job_id for r in rows if r.flink_job_id}
    by_version = {(r.pipeline, r.version): r for r in rows}
    found: list[Orphan] = []
    newest = sorted(jobs, key=lambda j: j.start_time_ms or 0, reverse=True)
    for job in newest:
        match = _VERSION_JOB.fullmatch(job.name.removeprefix(prefix))
        if job.state not in ACTIVE_JOB_STATES or job.job_id in known or match is None:
            continue
        pipeline, version = match["pipeline"], int(match["version"])
        row = by_version.get((pipeline, version))
        # a deploy records its version (deploying; or live or ready, for a job replaced by a
        # repair) without a job before it submits the job
        in_flight = row is not None and row.flink_job_id is None and row.state in registry.RUNNING_STATES
        young = now_ms - (job.start_time_ms or 0) < grace_s * 1000
        if not job.name.startswith(prefix) or (in_flight and young):
            continue
        first = not any(o.pipeline == pipeline and o.version == version for o in found)
        found.append(Orphan(job, pipeline, version, adoptable=in_flight and first))
    return found


def settle_orphans(
    pipeline: str,
    rows: Sequence[registry.VersionRow],
    services: Services,
    *,
    adopt: Callable[[Orphan], None] | None,
    grace_s: float = ORPHAN_GRACE_S,
) -> list[Orphan]:
    """Adopt (when `adopt` is given) or cancel the pipeline's orphan jobs, saying which."""
    engine, log = services.engine, services.log
    orphans = [
        o
        for o in find_orphans(engine.list_jobs(), rows, prefix=engine.job_name(""), grace_s=grace_s)
        if o.pipeline == pipeline
    ]
    for orphan in orphans:
        if orphan.adoptable and adopt is not None:
            adopt(orphan)
            log(f"{pipeline}: adopted {orphan.describe()}: a run that died before recording it submitted it")
        else:
            engine.cancel(orphan.job.job_id, wait=False)
            log(f"{pipeline}: cancelled {orphan.describe()}: the registry does not know it")
    return orphans


def adopt(conn: Connection, orphan: Orphan, **also: object) -> None:
    """Record an adoptable orphan as its version's job (a version being deployed moves on
    to catching up, as its deploy would have recorded it)."""
    [row] = [r for r in registry.pipeline_versions(conn, orphan.pipeline) if r.version == orphan.version]
    state = registry.CATCHING_UP if row.state == registry.DEPLOYING else row.state
    transitions.mark_job_started(
        conn, orphan.pipeline, orphan.version, state, flink_job_id=orphan.job.job_id, **also
    )
