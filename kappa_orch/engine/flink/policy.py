"""How kappa_orch's jobs checkpoint and restart, on any Flink cluster: the local stack
and the Kubernetes render both configure their cluster from here, so a session cluster
on Kubernetes behaves as the one the tests ran against (pure).

A repair resumes a job the cluster forgot from the checkpoint the observation sensor
recorded; Flink deletes all but the newest `num-retained` checkpoints, so those must
span at least two of the sensor's ticks for the recorded one to still be there."""

from __future__ import annotations

from typing import Any

# the local stack's figures: 12 x 5 s = 60 s, two ticks of the observation sensor (30 s)
CHECKPOINT_INTERVAL_S = 5
CHECKPOINTS_RETAINED = 12
OBSERVE_INTERVAL_S = 30


def job_policy(*, checkpoint_interval_s: int, checkpoints_retained: int) -> dict[str, Any]:
    """The Flink settings kappa_orch's jobs rely on (storage URIs and sizes are the caller's)."""
    return {
        "execution.checkpointing.interval": f"{checkpoint_interval_s}s",
        "execution.checkpointing.num-retained": checkpoints_retained,
        # a cancelled job's checkpoints stay: a rollback or repair resumes from them
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        # a job outlives the loss of a TaskManager: it restarts (1 s, 2 s, ... at most
        # 30 s apart) for as long as it takes the TaskManager to come back, instead of
        # failing for good after a fixed number of attempts
        "restart-strategy.type": "exponential-delay",
        "restart-strategy.exponential-delay.initial-backoff": "1s",
        "restart-strategy.exponential-delay.max-backoff": "30s",
        "restart-strategy.exponential-delay.backoff-multiplier": 2.0,
        "restart-strategy.exponential-delay.reset-backoff-threshold": "10min",
        "restart-strategy.exponential-delay.jitter-factor": 0.1,
        "restart-strategy.exponential-delay.attempts-before-reset-backoff": 2147483647,
        # the REST API's metric store fetches again only when its last fetch ended, and
        # a fetch that asked a TaskManager killed meanwhile ends only at this timeout:
        # at the default (10 min) a TaskManager's death froze every job's metrics,
        # late-record counters included, for ten minutes
        "web.timeout": "30s",
    }


def retention_problem(
    *, checkpoint_interval_s: int, checkpoints_retained: int, observe_interval_s: int
) -> str | None:
    """Why the retained checkpoints do not span two observation ticks, or None."""
    span = checkpoint_interval_s * checkpoints_retained
    if span >= 2 * observe_interval_s:
        return None
    needed = -(-2 * observe_interval_s // checkpoint_interval_s)
    return (
        f"{checkpoints_retained} retained checkpoints x {checkpoint_interval_s} s = {span} s, less than "
        f"two observation ticks ({2 * observe_interval_s} s): the checkpoint the sensor recorded "
        f"may be deleted before a repair resumes from it; retain at least {needed}"
    )
