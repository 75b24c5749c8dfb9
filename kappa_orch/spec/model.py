"""The pipeline spec: one YAML file per pipeline, its Flink SQL in a file beside it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from kappa_orch.spec.columns import MAX_TAGS, Column, SourceColumn, Tag
from kappa_orch.spec.rules import COUNTS_SCHEMA as COUNTS_SCHEMA
from kappa_orch.spec.rules import INPUT_COUNTS_TABLE as INPUT_COUNTS_TABLE
from kappa_orch.spec.rules import (
    MAX_CHECKS,
    MAX_COLUMNS,
    MAX_SOURCES,
    MAX_TEXT,
    TOPIC,
    Duration,
    EventTimeDuration,
    SqlName,
    check_not_a_version_name,
    check_qualified_name,
    check_user_schema,
    not_generated,
    unique_names,
)
from kappa_orch.spec.rules import REGISTRY_SCHEMA as REGISTRY_SCHEMA
from kappa_orch.spec.rules import parse_duration as parse_duration
from kappa_orch.spec.settings import Approval as Approval
from kappa_orch.spec.settings import CatchUp as CatchUp
from kappa_orch.spec.settings import Gate as Gate
from kappa_orch.spec.settings import Health as Health
from kappa_orch.spec.settings import Retire as Retire
from kappa_orch.spec.settings import Start as Start
from kappa_orch.spec.settings import Strict

_Strict = Strict


class EventTime(_Strict):
    """The event-time column, computed from an epoch-milliseconds source column."""

    column: SqlName = Field(default="event_time", description="Name of the computed event-time column.")
    from_column: SqlName = Field(alias="from", description="Source column holding epoch milliseconds.")
    watermark_delay: EventTimeDuration = Field(
        default="5s",
        description=(
            "How far out of event-time order a partition's events may be (duration): the watermark "
            "trails the partition's latest valid event time by this much."
        ),
    )
    max_ahead: EventTimeDuration | None = Field(
        default="1h",
        description=(
            "An event whose time is further ahead of its record's Kafka timestamp (the time it was "
            "written to the log) is implausible, e.g. from a device with a wrong clock: it is "
            "dead-lettered instead of moving event time on for everyone. null turns the check off."
        ),
    )


class Bootstrap(_Strict):
    """A snapshot of the source's older events, for batch days the topic no longer holds."""

    table: str = Field(
        description="schema.table in the warehouse: one row per event, a column per declared source column."
    )
    until: date = Field(
        description="The snapshot holds every event before this day (UTC); the topic is read from it on."
    )

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        schema, _ = check_qualified_name(value, "bootstrap table", "archive.authorizations")
        check_user_schema(schema, "the bootstrap table")
        return value


class Source(_Strict):
    name: SqlName = Field(description="The name the SQL uses for this source.")
    topic: Annotated[str, StringConstraints(pattern=TOPIC)] = Field(description="Kafka topic.")
    format: Literal["json"] = Field(default="json", description="Event encoding.")
    columns: list[SourceColumn] = Field(
        min_length=1, max_length=MAX_COLUMNS, description="Fields read from each event."
    )
    event_time: EventTime | None = Field(default=None, description="Event-time column and watermark.")
    bootstrap: Bootstrap | None = Field(
        default=None, description="Snapshot table that batch runs read for days before `until`."
    )
    partitions: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Partitions `kappa-orch topics --create` makes the topic with (default: the "
        "deployment's, 3). Not part of the fingerprint.",
    )
    max_message_bytes: int | None = Field(
        default=None,
        ge=1024,
        le=100_000_000,
        description="The largest event (bytes) the topic must take: `kappa-orch topics --create` makes "
        "the topic with this max.message.bytes and `kappa-orch topics` reports a topic that takes less "
        "(default: the broker's, 1 MiB). Producers must allow it too (message.max.bytes). Not part of "
        "the fingerprint.",
    )
    retention: Duration | Literal["forever"] | None = Field(
        default=None,
        description="How long the broker keeps the topic's records (`forever`: unlimited); default: "
        "the history the pipelines need (start.retention_needed, the batch range), else the "
        "deployment's or the broker's. Not part of the fingerprint.",
    )

    @model_validator(mode="after")
    def _event_time_source_exists(self) -> Source:
        names = [c.name for c in self.columns]
        unique_names(names, f"column(s) in source {self.name!r}")
        for name in self.sql_columns():
            not_generated(name, f"source {self.name!r} column")
        if self.bootstrap is not None and self.event_time is None:
            raise ValueError(
                f"bootstrap of source {self.name!r} needs an event_time "
                "(the snapshot covers days of event time)"
            )
        if self.event_time is not None:
            if self.event_time.from_column not in names:
                raise ValueError(
                    f"event_time.from {self.event_time.from_column!r} is not a column of source "
                    f"{self.name!r}; declare it under columns (epoch milliseconds, BIGINT)"
                )
            [time_type] = [c.type for c in self.columns if c.name == self.event_time.from_column]
            if time_type not in ("BIGINT", "INT"):
                raise ValueError(
                    f"event_time.from {self.event_time.from_column!r} of source {self.name!r} is declared "
                    f"{time_type}; it holds epoch milliseconds: declare it BIGINT"
                )
            if self.event_time.column in names:
                raise ValueError(
                    f"event_time.column {self.event_time.column!r} clashes with a declared column of "
                    f"source {self.name!r}; give the computed column another name"
                )
        return self

    def sql_columns(self) -> list[str]:
        names = [c.name for c in self.columns]
        return names + ([self.event_time.column] if self.event_time else [])


class Target(_Strict):
    alias: str = Field(description="Serving name, schema.table; versions are schema.table__vN.")
    primary_key: list[str] = Field(min_length=1, description="Columns that identify a row.")
    columns: list[Column] = Field(
        min_length=1, max_length=MAX_COLUMNS, description="Output columns, in the order the SQL selects them."
    )
    allow: list[Tag] = Field(
        default=[],
        max_length=MAX_TAGS,
        description="Classifications the alias may expose, e.g. [pii]: a target column that carries "
        "a tag not listed here (its own, or from the source columns it is computed from) is refused.",
    )

    @field_validator("alias")
    @classmethod
    def _alias(cls, value: str) -> str:
        parts = check_qualified_name(value, "alias", "analytics.daily_spend")
        check_user_schema(parts[0], "the alias")
        check_not_a_version_name(parts[1], "the alias table")
        if len(parts[1]) > 55:
            raise ValueError(
                f"table name {parts[1]!r} is too long: at most 55 characters leave room for __vN"
            )
        return value

    @model_validator(mode="after")
    def _key_in_columns(self) -> Target:
        names = [c.name for c in self.columns]
        unique_names(names, "target column(s)")
        for name in names:
            not_generated(name, "target column")
        unknown = [k for k in self.primary_key if k not in names]
        if unknown:
            raise ValueError(
                f"primary_key column(s) {unknown} are not target columns; the target has {names}"
            )
        if len(set(self.primary_key)) != len(self.primary_key):
            raise ValueError(f"primary_key {self.primary_key} repeats a column")
        return self

    @property
    def schema_name(self) -> str:
        return self.alias.split(".")[0]

    @property
    def table_name(self) -> str:
        return self.alias.split(".")[1]

    def version_table(self, version: int) -> str:
        return f"{self.table_name}__v{version}"


class Check(_Strict):
    expectation: Annotated[str, StringConstraints(pattern=r"^expect_[a-z0-9_]+$")] = Field(
        description="Great Expectations expectation, snake_case (expect_column_values_to_not_be_null)."
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="The expectation's arguments.")


class Batch(_Strict):
    """A daily-partitioned batch table: the same SQL over one day of the log at a time."""

    start_date: date = Field(description="First day (partition) of the batch table.")
    timezone: Literal["UTC"] = Field(default="UTC", description="Time zone of the days (UTC only for now).")
    day_column: SqlName = Field(description="Target column (DATE) that holds each row's day.")
    table: SqlName | None = Field(default=None, description="Table name; default <alias table>_daily.")

    @field_validator("table")
    @classmethod
    def _not_a_version(cls, value: str | None) -> str | None:
        if value is not None:
            check_not_a_version_name(value, "batch.table")
        return value

    days_per_run: int = Field(
        default=7, ge=1, le=366, description="Backfill policy: at most this many days in one Flink job."
    )
    recompute_failed_days: bool = Field(
        default=False,
        description="When a scheduled check fails on some days of the batch table, request their backfill.",
    )


class DeadLetters(_Strict):
    """Where events that fail to parse or break the source schema go (with reason and offset)."""

    topic: Annotated[str, StringConstraints(pattern=TOPIC)] | None = Field(
        default=None, description="Dead-letter topic; default kappa.dead-letters.<pipeline>."
    )
    retention: Duration | Literal["forever"] | None = Field(
        default=None,
        description="Retention of the dead-letter topic when a deploy creates it; default: the "
        "deployment's (KAPPA_DEAD_LETTER_RETENTION, 30d).",
    )


class PipelineSpec(_Strict):
    """A streaming pipeline: sources, the SQL, the target table and how it is run."""

    name: SqlName = Field(description="Pipeline name, unique in the deployment.")
    owner: str = Field(max_length=MAX_TEXT, description="Team or person that answers for it.")
    description: str = Field(default="", max_length=MAX_TEXT, description="What the pipeline computes.")
    tags: dict[str, Annotated[str, StringConstraints(max_length=MAX_TEXT)]] = Field(
        default_factory=dict, max_length=100, description="Free-form tags (domain, tier ...)."
    )
    sources: list[Source] = Field(
        min_length=1, max_length=MAX_SOURCES, description="Kafka topics the SQL reads."
    )
    sql: str = Field(description="File with the Flink SQL SELECT, relative to the spec.")
    target: Target
    checks: list[Check] = Field(
        default_factory=list, max_length=MAX_CHECKS, description="Data-quality expectations."
    )
    catch_up: CatchUp = Field(default_factory=CatchUp)
    gate: Gate = Field(default_factory=Gate)
    retire: Retire = Field(default_factory=Retire)
    approval: Approval = Field(default_factory=Approval)
    health: Health = Field(default_factory=Health)
    start: Start = Field(default_factory=Start)
    batch: Batch | None = Field(default=None, description="Also keep a daily-partitioned batch table.")
    dead_letters: DeadLetters = Field(default_factory=DeadLetters)
    allowed_lateness: EventTimeDuration | None = Field(
        default=None,
        description=(
            "Group windows stay open this long after the watermark passed them and update their "
            "row for each record that late (Flink's allow-lateness with late firing; refused with "
            "window table functions, OVER aggregates and interval joins). Default: none. Later records "
            "are dead-lettered as late, counted, and fail the gate beyond gate.max_late_records."
        ),
    )

    freshness: Duration | None = Field(
        default=None,
        description=(
            "How fresh the served table must be: the newest event the version has committed may "
            "lag the log's newest by at most this. It sets the job's checkpoint interval and its "
            "sink's flush interval (half of it, at least 1s), makes a candidate caught up only "
            "within it, and is checked as a health check. Changing it alone restarts the live "
            "job from a savepoint with its new settings (no new version). Default: none (the "
            "cluster's checkpoint interval)."
        ),
    )

    @field_validator("freshness")
    @classmethod
    def _freshness_bound(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value) < 2:
            raise ValueError(f"freshness {value!r} is below 2s: a job checkpoints at most every second")
        return value

    @model_validator(mode="after")
    def _unique_sources(self) -> PipelineSpec:
        names = [s.name for s in self.sources]
        unique_names(names, "source name(s)")
        for name in names:
            not_generated(name, "source name")
            if name.startswith("kafka_"):
                raise ValueError(
                    f"source name {name!r} clashes with the raw Kafka tables kappa_orch generates "
                    "(kafka_<source>); rename it"
                )
        own = {s.topic for s in self.sources}
        if self.dead_letter_topic in own:
            raise ValueError(
                f"dead_letters.topic {self.dead_letter_topic!r} is a source topic of this pipeline: dead "
                "letters would be written into the log they came from (a feedback loop); use a topic of "
                "their own (default kappa.dead-letters.<pipeline>)"
            )
        return self

    @model_validator(mode="after")
    def _batch_needs_event_time_and_a_day(self) -> PipelineSpec:
        if self.batch is None:
            return self
        without = [s.name for s in self.sources if s.event_time is None]
        if without:
            raise ValueError(
                f"batch needs an event_time on every source (a day is a range of event time); "
                f"missing on {without}"
            )
        day = next((c for c in self.target.columns if c.name == self.batch.day_column), None)
        if day is None or day.type != "DATE":
            raise ValueError(
                f"batch.day_column {self.batch.day_column!r} must be a DATE column of the target"
            )
        return self

    @property
    def dead_letter_topic(self) -> str:
        """Where broken events go: the spec's dead_letters.topic, else kappa.dead-letters.<name>."""
        return self.dead_letters.topic or f"kappa.dead-letters.{self.name}"

    @property
    def batch_table(self) -> str | None:
        """The batch table's name (batch.table, else <alias table>_daily), or None without `batch:`."""
        if self.batch is None:
            return None
        return self.batch.table or f"{self.target.table_name}_daily"


class LoadedPipeline(BaseModel):
    """A validated spec with its SQL text and where it came from."""

    model_config = ConfigDict(frozen=True)

    spec: PipelineSpec
    sql_text: str
    path: str

    @property
    def name(self) -> str:
        """The pipeline's name (from its spec)."""
        return self.spec.name

    @cached_property
    def fingerprint(self) -> str:
        """The pipeline's fingerprint (`spec.fingerprint.fingerprint`), computed once per
        loaded pipeline and carried: the version it names, the job's code version."""
        from kappa_orch.spec.fingerprint import fingerprint

        return fingerprint(self)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> LoadedPipeline:
        """A copy; its fingerprint is computed again (an update may change it)."""
        copy = super().model_copy(update=update, deep=deep)
        copy.__dict__.pop("fingerprint", None)
        return copy
