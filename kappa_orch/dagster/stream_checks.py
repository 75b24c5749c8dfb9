"""Health you can see: four asset checks on each pipeline's versions asset, derived from
what the stream observer sees, so the graph and the catalog turn red (or yellow) when a
job is lost, falls behind, stops checkpointing or drops records as late.

- `flink_job_running` (error): every live and ready version's job is alive; the Flink
  exception's root cause is in the description.
- `lag_within_bounds` (warning): no live or ready version lags more than `health.max_lag`.
- `checkpoint_fresh` (warning): every running job completed a checkpoint within
  `health.max_checkpoint_age` (a just-deployed one gets that long for its first).
- `late_records_within_bounds` (warning): no more records arrived late at a live or
  ready version's job (dead-lettered as late, or dropped by a Flink operator) than
  `gate.max_late_records`.

Each verdict is a pure function of the recorded answers. A service that did not answer
fails the checks that need it, naming the service and since when; a version that was
not asked (the tick's time budget ran out) gives no verdict: nothing is reported healthy
that was not observed. The sensor reports a verdict when it changes; the checks can also
be executed from the UI, which asks Flink and Kafka there and then.
"""

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    MetadataValue,
    multi_asset_check,
)

from kappa_orch.dagster.answers import StreamAnswers, gather_answers, gather_topic_ids, gather_topics
from kappa_orch.dagster.health import (
    JOB_RUNNING_CHECK,
    JOB_RUNNING_DESCRIPTION,
    job_health,
    stale_versions,
    stalled_problems,
)
from kappa_orch.dagster.translator import DEFAULT_TRANSLATOR, KappaTranslator
from kappa_orch.engine.flink.resource import FlinkResource, root_cause
from kappa_orch.engine.protocol import ACTIVE_JOB_STATES
from kappa_orch.plan.decide import SERVING
from kappa_orch.plan.replay_checks import replaced_log_problem, replaced_logs
from kappa_orch.registry import store as registry
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.model import LoadedPipeline
from kappa_orch.spec.rules import parse_duration

LAG_CHECK = "lag_within_bounds"
CHECKPOINT_CHECK = "checkpoint_fresh"
LATE_CHECK = "late_records_within_bounds"
SERVICE_NAMES = {"flink": "Flink", "kafka": "Kafka", "warehouse": "the warehouse (registry)"}

DESCRIPTIONS = {
    JOB_RUNNING_CHECK: JOB_RUNNING_DESCRIPTION,
    LAG_CHECK: (
        "No live or ready version's consumer lag exceeds the spec's health.max_lag records, "
        "nor (with a declared freshness) its newest committed event trails the log's by more."
    ),
    CHECKPOINT_CHECK: (
        "Every running job completed a checkpoint within the spec's health.max_checkpoint_age "
        "(a stalled checkpoint means a restart replays ever more of the log)."
    ),
    LATE_CHECK: (
        "No more records arrived late (event time behind the watermark) at a live or ready "
        "version's job than the spec's gate.max_late_records: late records are missing rows "
        "(each is in the dead-letter topic, reason late)."
    ),
}


@dataclass(frozen=True)
class Verdict:
    """One check's verdict on one pipeline (pure data). `observed` False: there was nothing
    to judge by (no verdict is reported by the sensor)."""

    check: str
    passed: bool
    summary: str
    severity: AssetCheckSeverity = AssetCheckSeverity.WARN
    metadata: dict[str, object] = field(default_factory=dict)
    observed: bool = True


@dataclass(frozen=True)
class Seen:
    """What a judge looks at: one pipeline, the registry's versions and live versions, and
    the services' answers."""

    pipeline: LoadedPipeline
    rows: Sequence[registry.VersionRow]
    live: dict[str, int]
    answers: StreamAnswers


def outage_text(service: str, problem: str, since_ms: int) -> str:
    """`Flink not reachable since 2026-11-27 09:41:02 UTC: <what it said>`."""
    since = datetime.fromtimestamp(since_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{SERVICE_NAMES.get(service, service)} not reachable since {since}: {problem}"


def _outage(check: str, service: str, answers: StreamAnswers, since: dict[str, int]) -> Verdict:
    text = outage_text(service, answers.outages[service], since.get(service, answers.observed_at_ms))
    return Verdict(check, False, f"not observed: {text}", metadata={"outage": service})


def _unobserved(check: str, why: str) -> Verdict:
    return Verdict(check, False, f"not observed: {why}", observed=False)


def _mine(
    pipeline: LoadedPipeline, rows: Sequence[registry.VersionRow], states: frozenset[str]
) -> list[registry.VersionRow]:
    return [r for r in rows if r.pipeline == pipeline.name and r.state in states]


def _label(row: registry.VersionRow, live: dict[str, int]) -> str:
    return f"v{row.version} ({'live' if live.get(row.pipeline) == row.version else row.state})"


def _missing_dead_letters(seen: Seen) -> list[str]:
    """A running version whose dead-letter topic is gone: its job cannot write its letters."""
    topic = seen.pipeline.spec.dead_letter_topic
    if topic not in seen.answers.missing_topics:
        return []
    running = [f"v{r.version}" for r in _mine(seen.pipeline, seen.rows, registry.RUNNING_STATES)]
    if not running:
        return []
    return [
        f"the dead-letter topic {topic} is missing (deleted?): {', '.join(running)} cannot write "
        "dead letters, so checkpoints fail and output stops; recreate it: "
        f"kappa-orch repair {seen.pipeline.name}"
    ]


def _replaced_logs(seen: Seen) -> list[str]:
    """A running version whose source topic was deleted (and created again) under it."""
    problems = []
    for row in _mine(seen.pipeline, seen.rows, registry.RUNNING_STATES):
        replaced = replaced_logs(row, seen.answers.topic_ids)
        if replaced:
            problems.append(replaced_log_problem(seen.pipeline.name, row, replaced))
    return problems


def _stuck(seen: Seen) -> list[str]:
    """A running version whose job runs but has not moved its read position while records
    wait (a blocked sink or producer, back pressure, checkpoints that never end): a live one
    serves stale rows, a candidate never catches up."""
    problems = []
    for row in _mine(seen.pipeline, seen.rows, registry.RUNNING_STATES):
        # a job Flink knows to be restarting or waiting for slots is said more precisely
        if (row.flink_job_id or "") in seen.answers.stuck and (
            row.flink_job_id or ""
        ) not in seen.answers.stalls:
            still_s, waiting = seen.answers.stuck[row.flink_job_id or ""]
            problems.append(
                f"v{row.version} read nothing for {still_s:,.0f}s while {waiting:,} records wait (its "
                "committed offsets stood still): its job runs but its output stopped; look at its back "
                "pressure and checkpoints in the Flink UI; if it stays stuck, cancel the job there and "
                f"`kappa-orch repair {seen.pipeline.name}` resumes it from its last checkpoint"
            )
    return problems


def job_verdict(seen: Seen) -> Verdict:
    """`flink_job_running`: every live and ready version has an alive job, able to write."""
    pipeline, rows, live, answers = seen.pipeline, seen.rows, seen.live, seen.answers
    mine = _mine(pipeline, rows, SERVING)
    if any(r.flink_job_id and r.flink_job_id not in answers.job_states for r in mine):
        return _unobserved(JOB_RUNNING_CHECK, "the time budget ran out before every job was asked")
    causes = {job: c for job, e in answers.job_exceptions.items() if (c := root_cause(e) or "")}
    health = job_health(pipeline, rows, live, answers.job_states, causes)
    metadata: dict[str, object] = {
        f"root_cause/v{v}": MetadataValue.text(c) for v, c in health.exceptions.items()
    }
    bound_s = parse_duration(pipeline.spec.health.max_stalled)
    stalled = stalled_problems(
        pipeline, rows, answers.stalls, causes, now_ms=answers.observed_at_ms, bound_s=bound_s
    )
    letters = _missing_dead_letters(seen) + _replaced_logs(seen) + _stuck(seen)
    letters += [
        f"{o.describe()} runs unknown to the registry, holding a task slot: `kappa-orch repair "
        f"{pipeline.name}` {'adopts' if o.adoptable else 'cancels'} it"
        for o in answers.orphans
        if o.pipeline == pipeline.name
    ]
    problems = ([] if health.passed else [health.summary]) + stalled + letters
    summary = "; ".join(problems) if problems else health.summary
    if stalled:
        summary += f" (bound {bound_s:,.0f}s: health.max_stalled)"
    passed = health.passed and not stalled and not letters
    return Verdict(JOB_RUNNING_CHECK, passed, summary, AssetCheckSeverity.ERROR, metadata)


def lag_verdict(seen: Seen) -> Verdict:
    """`lag_within_bounds`: no live or ready version lags more than `health.max_lag`."""
    pipeline, rows, live, answers = seen.pipeline, seen.rows, seen.live, seen.answers
    bound = pipeline.spec.health.max_lag
    lags: dict[str, int] = {}
    for row in _mine(pipeline, rows, SERVING):
        per_topic = [answers.lags.get((row.group_id, s.topic)) for s in pipeline.spec.sources]
        if None in per_topic:
            return _unobserved(LAG_CHECK, f"v{row.version}'s consumer group was not asked")
        lags[_label(row, live)] = sum(sum(p.values()) for p in per_topic if p is not None)
    if not lags:
        return _unobserved(LAG_CHECK, "no live or ready version")
    over = [f"{name} lags {lag:,} records" for name, lag in lags.items() if lag > bound]
    groups = {_label(r, live): r.group_id for r in _mine(pipeline, rows, SERVING)}
    over += stale_versions(pipeline.spec, groups, answers.event_lags)
    text = ", ".join(f"{name} {lag:,}" for name, lag in lags.items())
    summary = (
        "; ".join(over) + f" (bound {bound:,}: health.max_lag)" if over else f"lag {text} (bound {bound:,})"
    )
    return Verdict(
        LAG_CHECK, not over, summary, metadata={"max_lag": bound, **{f"lag/{k}": v for k, v in lags.items()}}
    )


def _checkpoint_problem(
    row: registry.VersionRow, answers: StreamAnswers, bound_s: float
) -> tuple[str | None, float | None]:
    """(what is wrong or None, checkpoint age in s or None) of one alive job; a stale one
    says why its checkpoints fail when Flink knows (e.g. the storage refusing writes)."""
    checkpoint = answers.checkpoints[row.flink_job_id or ""]
    failure = answers.checkpoint_failures.get(row.flink_job_id or "")
    why = f" (the last one failed: {failure})" if failure else ""
    if checkpoint is not None:
        age = max(0.0, (answers.observed_at_ms - checkpoint.completed_at_ms) / 1000)
        if age > bound_s:
            return f"v{row.version}'s last checkpoint is {age:,.0f}s old{why}", age
        if failure:
            # failing now (its newest attempt failed after its last completed one): a sink
            # that cannot flush fails every checkpoint long before the age bound is reached
            return (
                f"v{row.version}'s checkpoints are failing: {failure} (last completed {age:,.0f}s ago)",
                age,
            )
        return None, age
    if row.created_at is None:
        return None, None
    waited = answers.observed_at_ms / 1000 - row.created_at.timestamp()
    if waited > bound_s:
        return f"v{row.version} completed no checkpoint in the {waited:,.0f}s since its deploy{why}", None
    return None, None


def checkpoint_verdict(seen: Seen) -> Verdict:
    """`checkpoint_fresh`: every running, alive job checkpointed within the bound."""
    pipeline, rows, live, answers = seen.pipeline, seen.rows, seen.live, seen.answers
    bound_s = parse_duration(pipeline.spec.health.max_checkpoint_age)
    problems, ages = [], {}
    for row in _mine(pipeline, rows, registry.RUNNING_STATES):
        job = row.flink_job_id or ""
        if answers.job_states.get(job) not in ACTIVE_JOB_STATES or job not in answers.checkpoints:
            continue  # a lost job is flink_job_running's verdict; not asked: no claim
        problem, age = _checkpoint_problem(row, answers, bound_s)
        ages[f"checkpoint_age_s/{_label(row, live)}"] = round(age, 1) if age is not None else -1
        if problem:
            problems.append(problem)
    if not ages:
        return _unobserved(CHECKPOINT_CHECK, "no running job was asked")
    summary = (
        "; ".join(problems) + f" (bound {bound_s:,.0f}s: health.max_checkpoint_age)"
        if problems
        else f"{len(ages)} job(s) checkpointed within {bound_s:,.0f}s"
    )
    return Verdict(CHECKPOINT_CHECK, not problems, summary, metadata={"bound_s": bound_s, **ages})


def late_verdict(seen: Seen) -> Verdict:
    """`late_records_within_bounds`: no live or ready job dropped more than the gate allows."""
    pipeline, rows, live, answers = seen.pipeline, seen.rows, seen.live, seen.answers
    bound = pipeline.spec.gate.max_late_records
    dropped = {
        _label(row, live): sum(answers.late_records[row.flink_job_id or ""].values())
        for row in _mine(pipeline, rows, SERVING)
        if (row.flink_job_id or "") in answers.late_records
    }
    if not dropped:
        return _unobserved(LATE_CHECK, "no live or ready job reports its late-record counters yet")
    over = [f"{name} had {n:,} records arrive late" for name, n in dropped.items() if n > bound]
    summary = (
        "; ".join(over) + f" (bound {bound:,}: gate.max_late_records; see allowed_lateness)"
        if over
        else f"late records within {bound:,}: " + ", ".join(f"{k} {v:,}" for k, v in dropped.items())
    )
    return Verdict(
        LATE_CHECK, not over, summary, metadata={f"late_records/{k}": v for k, v in dropped.items()}
    )


# each check, the service it needs, and its judge
VERDICTS = (
    (JOB_RUNNING_CHECK, "flink", job_verdict),
    (LAG_CHECK, "kafka", lag_verdict),
    (CHECKPOINT_CHECK, "flink", checkpoint_verdict),
    (LATE_CHECK, "flink", late_verdict),
)


def verdicts_of(
    pipeline: LoadedPipeline,
    rows: Sequence[registry.VersionRow],
    live: dict[str, int],
    answers: StreamAnswers,
    since: dict[str, int],
) -> list[Verdict]:
    """The four health verdicts of one pipeline (pure): a check whose service did not
    answer says so; the others judge what was observed."""
    seen = Seen(pipeline, rows, live, answers)
    return [
        _outage(check, service, answers, since) if service in answers.outages else judge(seen)
        for check, service, judge in VERDICTS
    ]


def registry_outage_verdicts(problem: str, since_ms: int) -> list[Verdict]:
    """Every check's verdict while the registry cannot be read: nothing is known."""
    text = f"not observed: {outage_text('warehouse', problem, since_ms)}"
    return [Verdict(check, False, text, metadata={"outage": "warehouse"}) for check in DESCRIPTIONS]


def _metadata(verdict: Verdict) -> dict[str, object]:
    return {"summary": verdict.summary, **verdict.metadata}


def verdict_evaluation(
    pipeline: LoadedPipeline, verdict: Verdict, translator: KappaTranslator = DEFAULT_TRANSLATOR
) -> AssetCheckEvaluation:
    """The verdict as the asset check evaluation the sensor reports."""
    return AssetCheckEvaluation(
        asset_key=translator.key("versions", pipeline.spec),
        check_name=verdict.check,
        passed=verdict.passed,
        severity=verdict.severity,
        description=verdict.summary[:2000],
        metadata=_metadata(verdict),  # type: ignore[arg-type]
    )


def health_checks(
    pipelines: Sequence[LoadedPipeline], translator: KappaTranslator = DEFAULT_TRANSLATOR
) -> list[AssetChecksDefinition]:
    """The four health checks on every pipeline's versions asset: reported by the stream
    observation sensor when a verdict changes, and executable (they ask Flink and Kafka now)."""

    def build(pipeline: LoadedPipeline) -> AssetChecksDefinition:
        key = translator.key("versions", pipeline.spec)

        @multi_asset_check(
            name=f"{pipeline.name}_health",
            specs=[AssetCheckSpec(c, asset=key, description=d) for c, d in DESCRIPTIONS.items()],
            can_subset=True,
        )
        def _checks(
            context: AssetCheckExecutionContext,
            flink: FlinkResource,
            kafka: KafkaResource,
            warehouse: WarehouseResource,
        ) -> Iterator[AssetCheckResult]:
            with registry.session(warehouse) as conn:
                rows = registry.pipeline_versions(conn, pipeline.name)
                live = registry.live_versions(conn)
                inputs = registry.input_totals(conn)
            watched = [r for r in rows if r.state in registry.RUNNING_STATES and r.flink_job_id]
            deadline = time.monotonic() + 60
            answers = gather_answers(
                [(pipeline, r) for r in watched],
                kafka=kafka,
                flink=flink,
                deadline=deadline,
                inputs=inputs,
                rows=rows,
            )
            if watched:
                gather_topics([pipeline.spec.dead_letter_topic], answers, kafka=kafka, deadline=deadline)
                gather_topic_ids([s.topic for s in pipeline.spec.sources], answers, kafka=kafka)
            selected = {k.name for k in context.selected_asset_check_keys}
            for verdict in verdicts_of(pipeline, rows, live, answers, {}):
                if verdict.check in selected:
                    yield AssetCheckResult(
                        asset_key=key,
                        check_name=verdict.check,
                        passed=verdict.passed,
                        severity=verdict.severity,
                        description=verdict.summary[:2000],
                        metadata=_metadata(verdict),  # type: ignore[arg-type]
                    )

        return _checks

    return [build(p) for p in pipelines]
