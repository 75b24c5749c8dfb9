"""The rules of a spec's names, types and durations (pure): what the model's validators
apply, and the names kappa_orch keeps for itself."""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime
from importlib import resources
from typing import Annotated

from pydantic import AfterValidator
from sqlalchemy.dialects.postgresql.base import RESERVED_WORDS

IDENTIFIER = r"^[a-z_][a-z0-9_]{0,62}$"
TOPIC = r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,248}$"
_DURATION = re.compile(r"^(\d{1,9})(ms|s|m|h|d)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
# no duration a spec states needs more than ten years
MAX_DURATION_S = 3650 * 86400

# limits that keep a spec readable and `validate` fast; far above any real pipeline
MAX_COLUMNS = 500
MAX_TEXT = 10_000  # characters of a description, owner or tag
MAX_CHECKS = 200
MAX_SOURCES = 20

# schemas kappa_orch never writes a user's table into: its registry and PostgreSQL's own
REGISTRY_SCHEMA = "kappa_registry"
COUNTS_SCHEMA = "kappa_counts"  # the jobs' input counts
INPUT_COUNTS_TABLE = f"{COUNTS_SCHEMA}.input_counts"  # written by every job, read by the gate
GRANTS_SCHEMA = "kappa_grants"  # the job-role functions the stack installs
SYSTEM_SCHEMAS = frozenset({REGISTRY_SCHEMA, COUNTS_SCHEMA, GRANTS_SCHEMA, "information_schema"})
# names kappa_orch generates: a raw Kafka table's columns, the checked view's, the
# alias view's member tag. A source or target column may not take them.
GENERATED_COLUMNS = frozenset(
    {"payload", "payload_bytes", "kafka_partition", "kafka_offset", "kafka_timestamp"}
)
GENERATED_PREFIX = "kappa_"
_VERSION_SUFFIX = re.compile(r"__v\d+$")


@functools.cache
def flink_reserved_words() -> frozenset[str]:
    """Flink SQL's reserved words (kappa_orch/spec/flink_reserved_words.txt)."""
    text = resources.files("kappa_orch.spec").joinpath("flink_reserved_words.txt").read_text()
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


# Flink column types a spec may declare (besides DECIMAL(p, s)); the warehouse type each
# becomes is registry.serving.sql_type
COLUMN_TYPES = ("STRING", "BOOLEAN", "INT", "BIGINT", "DOUBLE", "DATE", "TIMESTAMP(3)")
DECIMAL_TYPE = re.compile(r"^DECIMAL\((\d{1,2}),\s*(\d{1,2})\)$")
MAX_DECIMAL_PRECISION = 38  # Flink's and a safe bound for PostgreSQL's NUMERIC


DAY_MS = 86_400_000


def day_start_ms(day: date) -> int:
    """The epoch milliseconds at which `day` begins (UTC)."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def parse_duration(text: str) -> float:
    """'500ms', '10s', '5m', '2h', '7d' -> seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration; write it like 500ms, 10s, 5m, 2h or 7d")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_DURATION_S:
        raise ValueError(f"{text!r} is too long: durations are at most 3650d (ten years)")
    return seconds


def check_identifier(name: str) -> str:
    if not re.match(IDENTIFIER, name):
        raise ValueError(
            f"{name!r} is not a valid identifier: use lower-case letters, digits and _ "
            "(starting with a letter or _), at most 63 characters"
        )
    if name.upper() in _POSTGRES_RESERVED or name.upper() in flink_reserved_words():
        engine = "PostgreSQL" if name.upper() in _POSTGRES_RESERVED else "Flink SQL"
        raise ValueError(
            f"{name!r} is an SQL reserved word ({engine}); choose another name (e.g. {name}_value)"
        )
    return name


_POSTGRES_RESERVED = frozenset(w.upper() for w in RESERVED_WORDS)


def check_user_schema(schema: str, what: str) -> None:
    """A schema a spec's table may live in: not the registry's, PostgreSQL's or public."""
    if schema in SYSTEM_SCHEMAS or schema.startswith("pg_"):
        own = ", ".join(sorted(SYSTEM_SCHEMAS - {"information_schema"}))
        raise ValueError(
            f"{what} may not be in schema {schema!r}: kappa_orch's own schemas ({own}) and PostgreSQL's "
            "(pg_*, information_schema) are not for pipeline tables; use a schema of your own, e.g. analytics"
        )


def check_not_a_version_name(table: str, what: str) -> None:
    if _VERSION_SUFFIX.search(table):
        raise ValueError(
            f"{what} {table!r} ends like a version table (<table>__v<N>): kappa_orch names every "
            "version so, and another pipeline's version could be taken; choose a name without __v<N>"
        )


def not_generated(name: str, what: str) -> None:
    if name in GENERATED_COLUMNS or name.startswith(GENERATED_PREFIX):
        raise ValueError(
            f"{what} {name!r} clashes with a name kappa_orch generates "
            f"({', '.join(sorted(GENERATED_COLUMNS))} and every name starting {GENERATED_PREFIX!r})"
            "; rename it"
        )


def unique_names(names: list[str], what: str) -> None:
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate {what} {duplicates}; each needs its own name")


def check_qualified_name(value: str, what: str, example: str) -> list[str]:
    """schema.table, each part an identifier -> [schema, table]."""
    parts = value.split(".")
    if len(parts) != 2:
        raise ValueError(f"{what} {value!r} must be schema.table, e.g. {example}")
    for part in parts:
        check_identifier(part)
    return parts


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


# event-time durations become Flink intervals of at most 999 days
_MAX_EVENT_TIME_S = 999 * 86400


def _check_event_time_duration(text: str) -> str:
    if parse_duration(text) > _MAX_EVENT_TIME_S:
        raise ValueError(f"{text!r} is too long: event-time durations are at most 999d")
    return text


# a lower-case SQL identifier that is not a reserved word: Flink's JDBC sink does not
# quote column names, and every name is quoted by SQLAlchemy on the warehouse side
SqlName = Annotated[str, AfterValidator(check_identifier)]
Duration = Annotated[str, AfterValidator(_check_duration)]
EventTimeDuration = Annotated[
    str, AfterValidator(_check_duration), AfterValidator(_check_event_time_duration)
]
