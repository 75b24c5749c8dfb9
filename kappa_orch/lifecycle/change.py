"""The class of a pipeline's change against its live version (plan.change), found by
compiling the spec as the live version would run it and comparing the two plans.

The candidate is compiled under the live version's number, table and consumer group, so
that what differs between the plans is what the spec changed, not what every version
changes (its table, its consumer group, the version its counters and dead letters carry).
Compiling runs on the SQL Gateway and starts no job.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import text

from kappa_orch.engine.protocol import CompiledJob, JobTarget
from kappa_orch.errors import FlinkJobError, KappaError
from kappa_orch.lifecycle.services import Services
from kappa_orch.plan.change import (
    Change,
    Columns,
    Costs,
    classify,
    dropped_columns,
    metadata_change,
    plan_id,
    replay_fixed_s,
    settings_change,
    settings_changes,
)
from kappa_orch.registry import store as registry
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.spec.model import LoadedPipeline, parse_duration

# a compiled plan's sink options that say where it writes are not part of what it computes
# (engine.flink.compiled.VOLATILE_OPTIONS): the plan is compiled, never run, against this
COMPILE_ONLY_JDBC = {"url": "jdbc:postgresql://127.0.0.1/compile-only"}


def live_columns(row: registry.VersionRow) -> Columns | None:
    definition = row.definition or {}
    if "columns" not in definition:
        return None
    return Columns(definition["columns"], definition.get("primary_key") or [])


def spec_columns(pipeline: LoadedPipeline) -> Columns:
    target = pipeline.spec.target
    return Columns([[c.name, c.type] for c in target.columns], list(target.primary_key))


def table_rows(services: Services, schema: str, table: str) -> int | None:
    """The rows a table holds (None: it cannot be counted)."""
    try:
        with services.warehouse.begin() as conn:
            counted = conn.execute(text(f'SELECT count(*) FROM "{schema}"."{table}"')).scalar()
    except Exception:  # a dropped table, a lost warehouse: no estimate, not a failure
        return None
    return int(counted or 0)


def change_of(
    pipeline: LoadedPipeline, live: registry.VersionRow | None, services: Services, records_held: int | None
) -> Change:
    """The class of the spec's change against `live` (the live version's row), with its
    reasons, cost, the live columns it drops and its plan id; `records_held`: what a full
    replay reads."""
    definition = (live.definition or {}) if live is not None else {}
    speed = (definition.get("catch_up") or {}).get("events_per_s")
    fixed = replay_fixed_s(parse_duration(pipeline.spec.catch_up.stable_for))
    costs = Costs(records_held, None, speed, fixed)
    candidate = spec_columns(pipeline)
    if live is None:
        return classify(None, None, candidate, costs)
    if live.fingerprint == pipeline.fingerprint:
        changed = settings_changes(live, pipeline)
        return settings_change(changed) if changed else metadata_change()
    columns = live_columns(live)
    with registry.session(services.warehouse) as conn:
        stored = registry.version_plan(conn, pipeline.name, live.version)
    compiled = _compiled_as(pipeline, live, services) if stored is not None and columns is not None else None
    plans = (
        stored.fingerprint if stored else live.fingerprint,
        compiled.fingerprint if compiled else pipeline.fingerprint,
    )
    if stored is None or columns is None or compiled is None:
        change = classify(None, columns or candidate, candidate, costs)
    else:
        diff = services.engine.compare_plans(
            stored.document, compiled.document, (columns.names, candidate.names)
        )
        rows = table_rows(services, pipeline.spec.target.schema_name, live.physical_table)
        change = classify(diff, columns, candidate, Costs(records_held, rows, speed, fixed))
    return replace(
        change,
        dropped=dropped_columns(columns, candidate, change.derivation),
        plan_id=plan_id(pipeline.name, live.version, plans, change.kind),
    )


def _compiled_as(
    pipeline: LoadedPipeline, live: registry.VersionRow, services: Services
) -> CompiledJob | None:
    """The spec compiled as the live version would run it (None: it cannot be compiled)."""
    target = JobTarget(
        live.physical_table, live.group_id, services.kafka.bootstrap_servers, COMPILE_ONLY_JDBC
    )
    try:
        return services.engine.compile_job(services.engine.version_job(pipeline, live.version, target))
    except FlinkJobError as exc:
        services.log(f"{pipeline.name}: the spec could not be compiled to compare it: {exc.problem}")
        return None


def records_held(kafka: KafkaResource, pipeline: LoadedPipeline) -> int | None:
    """What the pipeline's topics hold now: what a replay from the earliest offsets reads
    (None: a topic missing or Kafka down)."""
    try:
        return int(
            sum(high - low for s in pipeline.spec.sources for low, high in kafka.watermarks(s.topic).values())
        )
    except KappaError:
        return None
