"""The serving table checked against the log: closed days recomputed from the topics by
the pipeline's own SQL in a Flink batch job (batch.computed_days, into a staging table)
and compared row by row with what the alias serves for those days. A row the alias
lacks, a row it has that the log does not give, and a row whose values differ are each
counted and named by primary key: a hand edit, a lost write or a sink defect is found.

For pipelines with a `batch:` section (their rows belong to days). A DOUBLE column is
compared with a relative tolerance of 1e-9 (a sum's floating-point order differs between
the streaming and the batch job); every other column exactly."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, FromClause, and_, func, literal, or_, select

from kappa_orch.lifecycle.batch import computed_days
from kappa_orch.lifecycle.services import Services
from kappa_orch.registry import store as registry
from kappa_orch.registry.serving import version_table
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.spec.model import LoadedPipeline, PipelineSpec

LOG_PARITY_CHECK = "matches_the_log"
SAMPLES = 5
DOUBLE_TOLERANCE = 1e-9
Log = Callable[[str], None]


@dataclass(frozen=True)
class LogParity:
    days: list[date]
    rows: int  # the alias's rows of those days
    missing: int  # rows the log gives that the alias lacks
    extra: int  # rows the alias has that the log does not give
    differing: int  # rows whose values differ
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not (self.missing or self.extra or self.differing)

    def summary(self, alias: str) -> str:
        days = ", ".join(d.isoformat() for d in self.days)
        if self.passed:
            return f"{alias} matches the log on {days} ({self.rows:,} rows recomputed from the topics)"
        return (
            f"{alias} differs from the log on {days}: {self.missing:,} row(s) missing, {self.extra:,} "
            f"row(s) the log does not give, {self.differing:,} row(s) with other values (keys in "
            "sample_keys): a hand edit, a lost write or a sink defect; repair the days by replaying "
            "the pipeline (a new version) or find who wrote the table"
        )


def closed_days(days: Sequence[date], *, today: date, start: date) -> list[date]:
    """The days that are over (before yesterday, so no event of them is still on its way)
    and within the batch range (pure)."""
    return sorted(d for d in set(days) if start <= d < today - timedelta(days=1))


def pick_days(days: Sequence[date], count: int, rng: random.Random | None = None) -> list[date]:
    """A sample of `count` days: every closed day is checked over time (pure given rng)."""
    chosen = (rng or random.Random()).sample(list(days), min(count, len(days)))
    return sorted(chosen)


def serving_days(conn: Connection, spec: PipelineSpec) -> list[date]:
    assert spec.batch is not None
    alias = version_table(spec, spec.target.table_name)
    day = alias.c[spec.batch.day_column]
    return [d for (d,) in conn.execute(select(day).distinct()) if isinstance(d, date)]


def same_value(spec: PipelineSpec, a: FromClause, b: FromClause, column: str) -> Any:
    kind = next(c.type for c in spec.target.columns if c.name == column)
    left, right = a.c[column], b.c[column]
    if kind == "DOUBLE":
        scale = func.greatest(func.abs(left), func.abs(right), literal(1.0))
        return or_(
            and_(left.is_(None), right.is_(None)),
            func.abs(left - right) <= DOUBLE_TOLERANCE * scale,
        )
    return left.is_not_distinct_from(right)


def compare(conn: Connection, spec: PipelineSpec, staging: str, days: Sequence[date]) -> LogParity:
    """The alias's rows of `days` against the staging table's (recomputed from the log)."""
    assert spec.batch is not None
    alias = version_table(spec, spec.target.table_name)
    log = version_table(spec, staging)
    keys = spec.target.primary_key
    day = spec.batch.day_column
    served = select(alias).where(alias.c[day].in_(list(days))).subquery("served")
    logged = select(log).where(log.c[day].in_(list(days))).subquery("logged")
    match = and_(*[served.c[k] == logged.c[k] for k in keys])
    values = [c.name for c in spec.target.columns if c.name not in keys]

    def keys_of(query: Any) -> tuple[int, list[dict[str, Any]]]:
        return counted(conn, query, SAMPLES)

    missing, missing_keys = keys_of(
        select(*[logged.c[k] for k in keys])
        .select_from(logged.outerjoin(served, match))
        .where(served.c[keys[0]].is_(None))
    )
    extra, extra_keys = keys_of(
        select(*[served.c[k] for k in keys])
        .select_from(served.outerjoin(logged, match))
        .where(logged.c[keys[0]].is_(None))
    )
    differ = or_(*[~same_value(spec, served, logged, c) for c in values]) if values else literal(False)
    differing, differing_keys = keys_of(
        select(*[served.c[k] for k in keys]).select_from(served.join(logged, match)).where(differ)
    )
    rows = conn.execute(select(func.count()).select_from(served)).scalar_one()
    samples = {"missing": missing_keys, "not_in_log": extra_keys, "differing": differing_keys}
    return LogParity(sorted(days), int(rows), missing, extra, differing, samples)


def _held_from(pipeline: LoadedPipeline, kafka: KafkaResource) -> date:
    """The first whole day every source topic still holds: after the newest first record of
    a partition whose oldest records were deleted (a day retention cut into cannot be
    recomputed); any day when nothing was deleted."""
    held = date.min
    for source in pipeline.spec.sources:
        lows = {p: low for p, (low, _) in kafka.watermarks(source.topic).items()}
        firsts = kafka.first_timestamps(source.topic)
        cut = [t for p, t in firsts.items() if t is not None and lows.get(p, 0) > 0]
        if cut:
            held = max(held, datetime.fromtimestamp(max(cut) / 1000, UTC).date() + timedelta(days=1))
    return held


def counted(conn: Connection, query: Any, samples: int) -> tuple[int, list[dict[str, Any]]]:
    """How many rows `query` gives, and its first `samples` rows (values as plain text)."""
    count = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = conn.execute(query.limit(samples)).mappings().all()
    return int(count), [{k: _text(v) for k, v in r.items()} for r in rows]


def _text(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def verify_days(
    pipeline: LoadedPipeline,
    services: Services,
    days: Sequence[date] | None = None,
    *,
    count: int = 2,
    timeout_s: float = 900.0,
) -> LogParity | None:
    """Recompute `days` (default: a sample of `count` closed days the alias serves) from the
    log and compare them with the alias; None when there is nothing to check yet."""
    spec, warehouse = pipeline.spec, services.warehouse
    assert spec.batch is not None and spec.batch_table is not None
    with registry.session(warehouse) as conn:
        if registry.live_versions(conn).get(spec.name) is None:
            return None
        if days is None:
            today = datetime.now(UTC).date()
            start = max(spec.batch.start_date, _held_from(pipeline, services.kafka))
            closed = closed_days(serving_days(conn, spec), today=today, start=start)
            days = pick_days(closed, count)
    if not days:
        return None
    chosen = sorted(days)
    # one job over the range; only the chosen days are compared
    span = [chosen[0] + timedelta(days=i) for i in range((chosen[-1] - chosen[0]).days + 1)]
    with (
        computed_days(pipeline, span, spec.batch_table, services, timeout_s=timeout_s) as (staging, _),
        warehouse.begin() as conn,
    ):
        return compare(conn, spec, staging, chosen)
