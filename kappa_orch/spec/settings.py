"""The operational sections of a pipeline spec: how a new version catches up, what the gate
tolerates, the health bounds, how long a replaced version is kept, where a version starts.
None of them is in the fingerprint: changing one never redeploys."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kappa_orch.spec.rules import Duration, parse_duration


class Strict(BaseModel):
    """A spec section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CatchUp(Strict):
    max_lag: int = Field(default=1000, ge=0, description="Consumer lag (records) counted as caught up.")
    stable_for: Duration = Field(default="10s", description="How long the lag must stay under max_lag.")
    timeout: Duration = Field(default="30m", description="Give up waiting (the candidate stays) after this.")

    @field_validator("timeout")
    @classmethod
    def _some_time(cls, value: str) -> str:
        if parse_duration(value) < 1:
            raise ValueError(f"{value!r} leaves no time to catch up; give at least 1s (default 30m)")
        return value


class Gate(Strict):
    """Replay-correctness tolerances: how far a candidate may differ from the live version."""

    max_row_count_change: float = Field(
        default=0.1, ge=0, description="Largest relative change of the row count (0.1 = 10%)."
    )
    min_key_coverage: float = Field(
        default=0.9, ge=0, le=1, description="Smallest share of the live version's keys the candidate has."
    )
    max_value_change: float | None = Field(
        default=None,
        ge=0,
        description="Largest relative change of each numeric target column's sum over the keys both "
        "versions hold (0.01 = 1%); default: the sums are compared and shown in `parity_with_live`, not "
        "bounded (a reprocess often changes values on purpose).",
    )
    max_late_records: int = Field(
        default=0,
        ge=0,
        description="Records that may arrive late at the candidate's job (event time behind the watermark: "
        "dead-lettered as late).",
    )


class Health(Strict):
    """Bounds of the observation-derived health checks on the versions asset."""

    max_lag: int = Field(
        default=10_000,
        ge=0,
        description="Largest consumer lag (records) of a live or ready version (`lag_within_bounds`).",
    )
    max_checkpoint_age: Duration = Field(
        default="5m",
        description="Oldest last completed checkpoint of a running job (`checkpoint_fresh`).",
    )
    max_stalled: Duration = Field(
        default="2m",
        description="Longest a live or ready version's job may be restarting or waiting for task slots "
        "(e.g. its TaskManager never came back) before `flink_job_running` fails.",
    )


class Retire(Strict):
    grace: Duration = Field(
        default="1h", description="How long a replaced version is kept (for rollback) before it is retired."
    )


class Approval(Strict):
    """When a change waits for a person before its new version starts: the plan names it by
    an id that binds the live and the candidate's compiled plans (`kappa-orch plan --apply
    --approve <plan-id>`, or the reprocess run's `approve` config)."""

    above_events: int | None = Field(
        default=10_000_000,
        ge=0,
        description="A change whose path reads more records than this waits for approval (a replay "
        "reads every record the topics hold; a cheap start none); null: never for its size.",
    )
    dropping_columns: bool = Field(
        default=True, description="A change that drops a column of the live table waits for approval."
    )


class Start(Strict):
    position: Literal["earliest", "latest"] = Field(
        default="earliest", description="Where a new version starts."
    )
    retention_needed: Duration | None = Field(
        default=None, description="History the pipeline needs in its topics (duration), e.g. 30d."
    )
