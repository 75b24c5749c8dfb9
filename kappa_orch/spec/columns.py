"""A spec's columns: a target column (name, type, description, tags) and a source column,
which is also a field read from each event, strictly typed unless it opts in to `coerce`."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, StringConstraints, field_validator, model_validator

from kappa_orch.spec.rules import (
    COLUMN_TYPES,
    DECIMAL_TYPE,
    MAX_DECIMAL_PRECISION,
    MAX_TEXT,
    SqlName,
)
from kappa_orch.spec.settings import Strict

MAX_TAGS = 16
Tag = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class Column(Strict):
    name: SqlName = Field(description="Column name (lower-case identifier, not an SQL reserved word).")
    type: str = Field(
        description="Flink type: STRING, BOOLEAN, INT, BIGINT, DOUBLE, DECIMAL(p,s), DATE, TIMESTAMP(3)."
    )
    description: str = Field(default="", max_length=MAX_TEXT, description="What the column holds.")
    tags: list[Tag] = Field(
        default=[],
        max_length=MAX_TAGS,
        description="Classifications, e.g. [pii]. A source column's tags pass to every target column "
        "computed from it; an alias exposing a tagged column must allow the tag (target.allow).",
    )

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        normalised = re.sub(r"\s+", "", value.upper()).replace(",", ", ")
        if normalised in COLUMN_TYPES:
            return normalised
        match = DECIMAL_TYPE.match(normalised)
        if match:
            precision, scale = int(match.group(1)), int(match.group(2))
            if not 1 <= precision <= MAX_DECIMAL_PRECISION or scale > precision:
                raise ValueError(
                    f"{value!r}: DECIMAL(p, s) needs 1 <= p <= {MAX_DECIMAL_PRECISION} and 0 <= s <= p"
                )
            return normalised
        raise ValueError(
            f"unsupported column type {value!r}; use one of {', '.join(COLUMN_TYPES)} or DECIMAL(p, s)"
        )


COERCIBLE_TYPES = ("STRING", "BOOLEAN", "INT", "BIGINT", "DOUBLE", "DECIMAL")


class SourceColumn(Column):
    """A field read from each event. Its JSON type must match the declared type exactly
    (a string is not a number, a number is not a string) unless `coerce` allows more."""

    coerce: bool = Field(
        default=False,
        description="Also accept another JSON form of the value: a string holding a JSON number for "
        'INT, BIGINT, DOUBLE and DECIMAL; the strings "true" and "false" for BOOLEAN; a number or '
        "boolean (its JSON text) for STRING. The same range and digit rules apply. *fingerprint*",
    )

    @model_validator(mode="after")
    def _coercible(self) -> SourceColumn:
        if self.coerce and not self.type.startswith(COERCIBLE_TYPES):
            raise ValueError(
                f"column {self.name!r}: coerce is not available for {self.type} (a date or timestamp is "
                "always a JSON string of the documented form); remove `coerce`"
            )
        return self
