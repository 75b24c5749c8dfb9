"""One reprocess per alias at a time: a claim row in the registry, kept alive by a
heartbeat. A second request waits for the claim; a claim whose owner died (its
process is gone on this host, or its heartbeat stopped) is taken over. A reprocess holds
it from its deploy through its swap (the swap step of the same run takes it over), and
a rollback or a retire takes it too: neither can land between a gate and its swap."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert

from kappa_orch.errors import ClaimHeld
from kappa_orch.progress import Log
from kappa_orch.registry import store as registry
from kappa_orch.resources.warehouse import WarehouseResource


def owner_id(run_id: str) -> str:
    """Who holds a claim: the run, and the process (host:pid) running it."""
    return f"{run_id}@{socket.gethostname()}:{os.getpid()}"


def same_run(owner: str, other: str) -> bool:
    """Two owners of one run (its steps may run in processes of their own)."""
    return owner.rsplit("@", 1)[0] == other.rsplit("@", 1)[0]


def _owner_is_dead(owner: str) -> bool:
    """True when the owner ran on this host and its process is gone."""
    try:
        _, where = owner.rsplit("@", 1)
        host, pid = where.rsplit(":", 1)
    except ValueError:
        return False
    return host == socket.gethostname() and not os.path.exists(f"/proc/{int(pid)}")


@dataclass(frozen=True)
class Claimant:
    """Who claims a pipeline, and how patiently: up to `wait_s` for another run's claim to
    end, taking over one whose heartbeat is older than `stale_s`."""

    owner: str
    wait_s: float = 600.0
    stale_s: float = 60.0


def acquire(
    warehouse: WarehouseResource, pipeline: str, claimant: Claimant, *, fingerprint: str, log: Log
) -> None:
    """Take the pipeline's reprocess claim, waiting for another holder to finish."""
    owner, wait_s, stale_s = claimant.owner, claimant.wait_s, claimant.stale_s
    started = time.monotonic()
    announced = False
    claims = registry.claims
    while True:
        with registry.session(warehouse) as conn:
            registry.lock(conn, f"claim:{pipeline}")
            holder = conn.execute(
                select(
                    claims.c.owner,
                    claims.c.fingerprint,
                    (func.extract("epoch", func.now() - claims.c.heartbeat_at)).label("silent_s"),
                ).where(claims.c.pipeline == pipeline)
            ).first()
            free = holder is None or same_run(holder.owner, owner)
            abandoned = holder is not None and (
                _owner_is_dead(holder.owner) or float(holder.silent_s) > stale_s
            )
            if free or abandoned:
                if abandoned and holder is not None:
                    log(f"{pipeline}: taking over the reprocess claim of {holder.owner} (its run is gone)")
                conn.execute(
                    insert(claims)
                    .values(pipeline=pipeline, owner=owner, fingerprint=fingerprint)
                    .on_conflict_do_update(
                        index_elements=[claims.c.pipeline],
                        set_={
                            "owner": owner,
                            "fingerprint": fingerprint,
                            "started_at": func.now(),
                            "heartbeat_at": func.now(),
                        },
                    )
                )
                return
        assert holder is not None
        waited = time.monotonic() - started
        if waited > wait_s:
            raise ClaimHeld(
                f"another reprocess of {pipeline!r} is running ({holder.owner}, fingerprint "
                f"{holder.fingerprint}); waited {waited:.0f}s",
                "let it finish (kappa-orch status shows its progress), or stop that run; a claim "
                f"whose run died is taken over after {stale_s:.0f}s",
            )
        if not announced:
            log(f"{pipeline}: waiting for the reprocess run {holder.owner} to finish")
            announced = True
        time.sleep(2)


@contextmanager
def holding(
    warehouse: WarehouseResource, pipeline: str, claimant: Claimant, *, fingerprint: str, log: Log
) -> Iterator[None]:
    """The pipeline's claim for a short operation (a swap, a rollback, a retire): taken,
    waiting for a reprocess in flight (with a message) up to the claimant's `wait_s`,
    released after."""
    acquire(warehouse, pipeline, claimant, fingerprint=fingerprint, log=log)
    try:
        yield
    finally:
        release(warehouse, pipeline=pipeline, owner=claimant.owner)


def heartbeat(warehouse: WarehouseResource, *, pipeline: str, owner: str) -> None:
    with warehouse.begin() as conn:
        conn.execute(
            update(registry.claims)
            .where(registry.claims.c.pipeline == pipeline, registry.claims.c.owner == owner)
            .values(heartbeat_at=func.now())
        )


def release(warehouse: WarehouseResource, *, pipeline: str, owner: str) -> None:
    with warehouse.begin() as conn:
        conn.execute(
            delete(registry.claims).where(
                registry.claims.c.pipeline == pipeline, registry.claims.c.owner == owner
            )
        )


def held_claims(warehouse: WarehouseResource) -> dict[str, str]:
    """pipeline -> owner of every claim (for plans and sensors)."""
    with registry.session(warehouse) as conn:
        return {r.pipeline: r.owner for r in conn.execute(select(registry.claims))}
