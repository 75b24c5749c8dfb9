"""Await catch-up: a candidate has caught up when its consumer lag stayed at or under
the spec's threshold for the stability window and a checkpoint completed after that
(the JDBC sink flushes on checkpoints, so the table then holds what was read)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from kappa_orch.engine.protocol import ACTIVE_JOB_STATES, StreamEngine
from kappa_orch.errors import FlinkJobError
from kappa_orch.lifecycle.services import Services
from kappa_orch.progress import ProgressLine
from kappa_orch.spec.model import PipelineSpec, parse_duration


@dataclass
class CatchUpTracker:
    """The catch-up decision over a series of (time, lag) readings (pure)."""

    max_lag: int
    stable_for_s: float
    stable_since: float | None = None
    first: tuple[float, int] | None = None
    last: tuple[float, int] | None = None

    def observe(self, now: float, lag: int) -> bool:
        """Record a reading; True once the lag has been low for the whole window."""
        if self.first is None:
            self.first = (now, lag)
        self.last = (now, lag)
        if lag > self.max_lag:
            self.stable_since = None
            return False
        if self.stable_since is None:
            self.stable_since = now
        return now - self.stable_since >= self.stable_for_s

    def progress(self) -> tuple[float, float, float | None]:
        """(share of the first backlog done, records/s since the first reading, seconds left)."""
        if self.first is None or self.last is None:
            return 0.0, 0.0, None
        (t0, lag0), (t1, lag1) = self.first, self.last
        done = 1.0 if lag0 <= 0 else max(0.0, min(1.0, (lag0 - lag1) / lag0))
        # a lag that grew (the job restarting while events arrive) is no progress, not a
        # negative speed
        rate = max(0.0, (lag0 - lag1) / (t1 - t0)) if t1 > t0 else 0.0
        left = lag1 / rate if rate > 0 else None
        return done, rate, left


# (lag, percent done, events/s, seconds left or None)
Progress = Callable[[int, float, float, float | None], None]


@dataclass(frozen=True)
class Awaited:
    """A version's job being awaited: its pipeline's spec, the job and its consumer group."""

    spec: PipelineSpec
    job_id: str
    group_id: str


@dataclass(frozen=True)
class CatchUpResult:
    seconds: float  # the whole wait: backlog, stability window, checkpoint
    final_lag: int
    checkpoint_id: int
    backlog: int  # lag at the first reading
    settled_after_s: float  # from the first reading until the lag last went under max_lag

    @property
    def events_per_s(self) -> float:
        """Replay speed over the backlog (its first reading until the lag settled)."""
        return self.backlog / self.settled_after_s if self.settled_after_s > 0 else 0.0


def _alive(spec: PipelineSpec, job_id: str, flink: StreamEngine) -> str:
    """The job's state; a job that is not alive (failed, cancelled, unknown) is an error."""
    state = flink.job_state(job_id)
    if state not in ACTIVE_JOB_STATES:
        cause = flink.job_root_cause(job_id)
        raise FlinkJobError(
            f"the Flink job {job_id} of {spec.name!r} is {state} while catching up"
            + (f"; root cause: {cause}" if cause else ""),
            "read the job's exception in the Flink UI; fix the spec and reprocess again "
            "(the candidate is kept for inspection)",
        )
    return state


def _report(
    job: Awaited,
    tracker: CatchUpTracker,
    reading: tuple[int, str],
    services: Services,
    progress: Progress | None,
) -> None:
    """One progress line for a reading (lag, job state): share of the backlog done, lag,
    speed and time left (also to `progress`, when given: lag, share done, events/s,
    seconds left)."""
    spec, log, (lag, state) = job.spec, services.log, reading
    done, rate, left = tracker.progress()
    if progress is not None:
        progress(lag, done * 100, rate, left)
    eta = f", about {left:.0f}s left" if left is not None else ""
    log(
        ProgressLine(
            f"{spec.name}: catch-up {done:.0%} of the backlog, lag {lag:,}, {rate:,.0f} events/s{eta}", done
        )
    )
    if state != "RUNNING":
        cause = services.engine.job_root_cause(job.job_id) if state == "RESTARTING" else None
        log(f"{spec.name}: the job is {state}" + (f"; last failure: {cause}" if cause else ""))


def fresh_enough(spec: PipelineSpec, group_id: str, services: Services) -> bool:
    """With a declared freshness, a version is caught up only when its newest committed
    event trails the log's newest by at most that (by record timestamps); else always."""
    if spec.freshness is None:
        return True
    bound_ms = parse_duration(spec.freshness) * 1000
    return all(
        behind <= bound_ms
        for source in spec.sources
        for behind in services.kafka.event_time_lag_ms(group_id, source.topic).values()
    )


def await_catch_up(
    job: Awaited,
    services: Services,
    *,
    heartbeat: Callable[[], None] = lambda: None,
    poll_s: float = 2.0,
    progress: Progress | None = None,
) -> CatchUpResult:
    """Wait until the version's job has caught up; progress goes to the services' log."""
    spec, job_id, flink, log = job.spec, job.job_id, services.engine, services.log
    timeout_s = parse_duration(spec.catch_up.timeout)
    tracker = CatchUpTracker(spec.catch_up.max_lag, parse_duration(spec.catch_up.stable_for))
    started = time.monotonic()
    last_report = 0.0
    stable_at_ms: int | None = None
    while True:
        heartbeat()
        now = time.monotonic()
        state = _alive(spec, job_id, flink)
        lag = sum(sum(services.kafka.consumer_lag(job.group_id, s.topic).values()) for s in spec.sources)
        caught_up = tracker.observe(now, lag) and fresh_enough(spec, job.group_id, services)
        if now - last_report >= 5 or caught_up:
            _report(job, tracker, (lag, state), services, progress)
            last_report = now
        if caught_up:
            if stable_at_ms is None:
                stable_at_ms = int(time.time() * 1000)
            checkpoint = flink.last_checkpoint(job_id)
            if checkpoint is not None and checkpoint.completed_at_ms > stable_at_ms:
                elapsed = time.monotonic() - started
                first_at, backlog = tracker.first or (now, 0)
                settled = (tracker.stable_since or now) - first_at
                log(
                    f"{spec.name}: caught up in {elapsed:.1f}s (lag {lag}, checkpoint "
                    f"{checkpoint.checkpoint_id} completed after the lag settled)"
                )
                return CatchUpResult(elapsed, lag, checkpoint.checkpoint_id, backlog, settled)
        else:
            stable_at_ms = None
        if now - started > timeout_s:
            cause = flink.job_root_cause(job_id)
            raise FlinkJobError(
                f"{spec.name!r} did not catch up within {spec.catch_up.timeout} (lag {lag:,}, "
                f"threshold {spec.catch_up.max_lag:,}; job {state}"
                + (f", last failure: {cause}" if cause else "")
                + ")",
                "the candidate keeps running and is kept; look at the job in the Flink UI, raise "
                "catch_up.timeout, then reprocess again to resume waiting",
            )
        time.sleep(poll_s)
