"""A version's states and the one table of moves between them (pure). The registry
enforces it in `registry.transitions`, the only place a state is written."""

from __future__ import annotations

from enum import StrEnum

from kappa_orch.errors import KappaError


class VersionState(StrEnum):
    """A version's state, in the order a healthy version passes through them."""

    DEPLOYING = "deploying"  # its table is made and its job submitted
    CATCHING_UP = "catching_up"  # its job replays the log
    CHECKING = "checking"  # the gate runs its checks
    READY = "ready"  # gated; may go live (or, replaced, serves a rollback until retired)
    LIVE = "live"  # the alias serves it
    FAILED = "failed"  # failed its checks or its deploy; kept for inspection
    RETIRED = "retired"  # job stopped, table dropped


DEPLOYING = VersionState.DEPLOYING
CATCHING_UP = VersionState.CATCHING_UP
CHECKING = VersionState.CHECKING
READY = VersionState.READY
LIVE = VersionState.LIVE
FAILED = VersionState.FAILED
RETIRED = VersionState.RETIRED
RUNNING_STATES = frozenset({DEPLOYING, CATCHING_UP, CHECKING, READY, LIVE})

# every move a version may make (staying where it is is always allowed: steps are idempotent)
TRANSITIONS: dict[VersionState, frozenset[VersionState]] = {
    # a deploy's job runs (catching up) or fails to start; a candidate may be retired at any time
    DEPLOYING: frozenset({CATCHING_UP, FAILED, RETIRED}),
    # caught up, it is checked; a lost job is redeployed; a superseded one is abandoned
    CATCHING_UP: frozenset({CHECKING, DEPLOYING, FAILED, RETIRED}),
    # the gate lets it through (ready) or not (failed); a lost job is redeployed
    CHECKING: frozenset({READY, FAILED, CATCHING_UP, DEPLOYING, RETIRED}),
    # a swap makes it live; a ready version whose table is gone fails; replaced ones retire
    READY: frozenset({LIVE, FAILED, RETIRED}),
    # only another swap moves the live version: it stays ready for a rollback
    LIVE: frozenset({READY}),
    # a failed candidate is checked again (accepting a failure) or redeployed, or retired
    FAILED: frozenset({CATCHING_UP, DEPLOYING, RETIRED}),
    # retired is final: a retired fingerprint comes back as a new version
    RETIRED: frozenset(),
}


class IllegalTransition(KappaError):
    """A step tried to move a version where the state machine does not allow."""

    def __init__(self, pipeline: str, version: int, before: str, after: str) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[VersionState(before)])) or "nowhere (final)"
        super().__init__(
            f"{pipeline} v{version} cannot go from {before} to {after} (from {before} it may go to: "
            f"{allowed})",
            "this is a bug or a concurrent change: run `kappa-orch status` and `kappa-orch plan` and "
            "report the sequence of commands",
        )


def check_transition(pipeline: str, version: int, before: str, after: str) -> None:
    """Raise IllegalTransition unless `before` -> `after` is allowed (pure)."""
    if before != after and VersionState(after) not in TRANSITIONS[VersionState(before)]:
        raise IllegalTransition(pipeline, version, before, after)
