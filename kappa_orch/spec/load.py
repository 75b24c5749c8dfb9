"""Reading pipeline specs: every problem is named with its file, field and fix, and all
problems of a folder are reported at once."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import ValidationError
from sqlglot import exp

from kappa_orch.errors import SpecError
from kappa_orch.spec.model import LoadedPipeline, PipelineSpec
from kappa_orch.spec.sql import (
    SqlProblem,
    group_windows,
    late_dropping,
    output_columns,
    parse_select,
    source_tables,
)


class SpecProblem(SpecError):
    """One problem in one spec file."""

    def __init__(self, path: Path | str, field: str, problem: str, fix: str | None = None) -> None:
        self.path = str(path)
        self.field = field
        super().__init__(f"{path}: {field}: {problem}", fix)


class SpecErrors(SpecError):
    """Every problem found in a folder of specs."""

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = problems
        lines = [str(p) for p in problems]
        super().__init__(f"{len(problems)} problem(s) in the pipeline specs:\n" + "\n".join(lines))


def _field(loc: Iterable[object]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


# a spec or SQL file larger than this is a mistake (or an attack on `validate`)
MAX_FILE_BYTES = 1_000_000


def read_text(path: Path, spec: Path, field: str) -> str:
    """A spec's (or its SQL's) text: UTF-8, at most MAX_FILE_BYTES, or a SpecErrors."""
    what = "the spec" if path == spec else f"SQL file {path.name!r}"
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SpecErrors(
                [
                    SpecProblem(
                        spec,
                        field,
                        f"{what} is {size:,} bytes; the limit is {MAX_FILE_BYTES:,}",
                        "split the pipeline, or move long descriptions to docs",
                    )
                ]
            )
        data = path.read_bytes()
    except OSError as exc:
        reason = "a symbolic link to a file that does not exist" if path.is_symlink() else exc.strerror
        raise SpecErrors(
            [SpecProblem(spec, field, f"cannot read {what} ({path}): {reason}", "fix or remove the file")]
        ) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SpecErrors(
            [
                SpecProblem(
                    spec,
                    field,
                    f"{what} is not valid UTF-8 (byte 0x{data[exc.start]:02x} on line {line})",
                    "save the file as UTF-8",
                )
            ]
        ) from exc


def load_pipeline(path: Path) -> LoadedPipeline:
    """Read and validate one spec and its SQL; raise SpecErrors naming every problem."""
    text = read_text(path, path, "(file)")
    # libyaml's loader when PyYAML was built with it: ten times faster than pure Python
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        # aliases (*name) expand without bound (a "billion laughs" fits in a few lines)
        if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=loader)):
            raise SpecErrors(
                [
                    SpecProblem(
                        path,
                        "(yaml)",
                        "YAML aliases (*name) are not allowed in a spec",
                        "write the value out where the alias stands",
                    )
                ]
            )
        raw = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise SpecErrors(
            [SpecProblem(path, "(yaml)", f"not valid YAML: {exc}", "fix the YAML syntax")]
        ) from exc
    if not isinstance(raw, dict):
        raise SpecErrors([SpecProblem(path, "(top level)", "the spec must be a YAML mapping of fields")])
    try:
        spec = PipelineSpec.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            fix = None
            if error["type"] == "missing":
                fix = f"add the field {_field(error['loc'])}"
            elif error["type"] == "extra_forbidden":
                message = "unknown field"
                fix = "remove it or fix its spelling; the README lists the spec's fields"
            problems.append(SpecProblem(path, _field(error["loc"]), message, fix))
        raise SpecErrors(problems) from exc

    sql_path = path.parent / spec.sql
    if not sql_path.is_file() and not sql_path.is_symlink():
        raise SpecErrors(
            [
                SpecProblem(
                    path,
                    "sql",
                    f"SQL file {spec.sql!r} not found (looked for {sql_path})",
                    "put the SELECT in that file next to the spec, or fix the name",
                )
            ]
        )
    sql_text = read_text(sql_path, path, "sql")
    problems = _check_sql(path, spec, sql_text)
    if problems:
        raise SpecErrors(problems)
    return LoadedPipeline(spec=spec, sql_text=sql_text, path=str(path))


def _exposures(path: Path, spec: PipelineSpec, sql_text: str) -> list[SpecProblem]:
    """Target columns whose classifications the alias does not allow."""
    from kappa_orch.spec.classify import column_tags, exposure_problems

    fix = "allow it (target.allow: [pii]) if the alias may serve it, or stop selecting the column"
    return [
        SpecProblem(path, "target.allow", problem, fix)
        for problem in exposure_problems(spec, column_tags(spec, sql_text))
    ]


def _check_sql(path: Path, spec: PipelineSpec, sql_text: str) -> list[SpecProblem]:
    try:
        query = parse_select(sql_text)
        outputs = output_columns(query)
    except SqlProblem as exc:
        return [SpecProblem(path, "sql", f"{spec.sql}: {exc}", "fix the SELECT")]
    problems = []
    declared = [c.name for c in spec.target.columns]
    if outputs != declared:
        problems.append(
            SpecProblem(
                path,
                "target.columns",
                f"the SQL selects {outputs} but target.columns declares {declared}",
                "declare the target columns in the order the SELECT returns them",
            )
        )
    sources = {s.name for s in spec.sources}
    read = source_tables(query)
    for table in sorted(read - sources):
        problems.append(
            SpecProblem(
                path,
                "sources",
                f"the SQL reads {table!r}, which is not a declared source (sources: {sorted(sources)})",
                "declare it under sources, or fix the table name in the SQL",
            )
        )
    windows = group_windows(query)
    if spec.batch is not None and windows:
        problems.append(
            SpecProblem(
                path,
                "batch",
                f"the SQL uses the group window function(s) {windows}, which Flink cannot run in batch "
                "mode (the planner fails with 'Unknown window type encountered'), so this pipeline "
                "cannot have a batch table",
                "remove `batch:`, or aggregate on a plain time bucket that both modes run, e.g. "
                "GROUP BY merchant, FLOOR(event_time TO HOUR)",
            )
        )
    problems += _lateness(path, spec, query)
    problems += _exposures(path, spec, sql_text)
    for unused in sorted(sources - read):
        problems.append(
            SpecProblem(
                path,
                "sources",
                f"source {unused!r} is declared but the SQL does not read it",
                "remove the source, or read it in the SQL",
            )
        )
    return problems


def _lateness(path: Path, spec: PipelineSpec, query: exp.Query) -> list[SpecProblem]:
    """allowed_lateness is honoured by group windows only: Flink's other operators that
    drop late records (window table functions, OVER aggregates, interval joins) drop
    every record behind the watermark whatever it says, and the late count would be wrong."""
    if spec.allowed_lateness is None:
        return []
    event_times = {s.event_time.column for s in spec.sources if s.event_time is not None}
    others = [kind for kind in late_dropping(query, event_times) if kind != "group window"]
    if not others:
        return []
    return [
        SpecProblem(
            path,
            "allowed_lateness",
            f"allowed_lateness applies to group windows only, and the SQL has {', '.join(others)}: "
            "Flink drops every record behind the watermark there whatever allowed_lateness says",
            "remove allowed_lateness and raise the sources' event_time.watermark_delay instead, or "
            "use a group window (GROUP BY TUMBLE(event_time, ...))",
        )
    ]


def load_pipelines(folder: Path) -> list[LoadedPipeline]:
    """Every spec (*.yaml, *.yml) under folder, sorted by name; all problems at once."""
    paths = sorted([*folder.rglob("*.yaml"), *folder.rglob("*.yml")])
    pipelines: list[LoadedPipeline] = []
    problems: list[SpecProblem] = []
    for path in paths:
        try:
            pipelines.append(load_pipeline(path))
        except SpecErrors as exc:
            problems.extend(exc.problems)
    problems.extend(_cross_checks(pipelines))
    if problems:
        raise SpecErrors(problems)
    return sorted(pipelines, key=lambda p: p.name)


def _cross_checks(pipelines: list[LoadedPipeline]) -> list[SpecProblem]:
    """What one pipeline may not take from another: its name, its tables, its topics."""
    problems = []
    names: dict[str, str] = {}
    for pipeline in pipelines:
        if pipeline.name in names:
            problems.append(
                SpecProblem(
                    pipeline.path,
                    "name",
                    f"pipeline name {pipeline.name!r} is already used by {names[pipeline.name]}",
                    "give each pipeline its own pipeline name",
                )
            )
        names.setdefault(pipeline.name, pipeline.path)
    # an alias or batch table of one pipeline may not be another's alias or batch table
    tables: dict[str, tuple[str, str]] = {}
    for pipeline in pipelines:
        spec = pipeline.spec
        owned = [("target.alias", spec.target.alias)]
        if spec.batch_table is not None:
            owned.append(("batch.table", f"{spec.target.schema_name}.{spec.batch_table}"))
        for field, table in owned:
            other = tables.get(table)
            if other is not None and other[0] != pipeline.path:
                problems.append(
                    SpecProblem(
                        pipeline.path,
                        field,
                        f"{table!r} is already used by {other[0]} (its {other[1]})",
                        "give each pipeline its own target alias and batch table",
                    )
                )
            tables.setdefault(table, (pipeline.path, field))
    return problems + _letter_topics(pipelines)


def _letter_topics(pipelines: list[LoadedPipeline]) -> list[SpecProblem]:
    """Dead letters never go into a topic a pipeline reads (the log is the source of truth),
    nor into another pipeline's dead-letter topic (its letters, counts and retention)."""
    problems = []
    read_by = {s.topic: p.path for p in pipelines for s in p.spec.sources}
    letters_of: dict[str, LoadedPipeline] = {}
    for pipeline in pipelines:
        topic = pipeline.spec.dead_letter_topic
        owner = letters_of.setdefault(topic, pipeline)
        if owner.name != pipeline.name:  # a pipeline name used twice is said above
            problems.append(
                SpecProblem(
                    pipeline.path,
                    "dead_letters.topic",
                    f"{topic!r} is the dead-letter topic of {owner.path}: its letters would be mixed with "
                    "another pipeline's",
                    "give each pipeline its own dead-letter topic (default kappa.dead-letters.<pipeline>)",
                )
            )
        if topic in read_by and read_by[topic] != pipeline.path:
            problems.append(
                SpecProblem(
                    pipeline.path,
                    "dead_letters.topic",
                    f"{topic!r} is a source topic of {read_by[topic]}: dead letters would be written "
                    "into a log a pipeline reads",
                    "give the dead letters a topic of their own (default kappa.dead-letters.<pipeline>)",
                )
            )
    return problems
