"""Reading pipeline specs: every problem is named with its file, field and fix, and all
problems of a folder are reported at once."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import ValidationError

from kappa_orch.errors import KappaError
from kappa_orch.spec.model import LoadedPipeline, PipelineSpec
from kappa_orch.spec.sql import SqlProblem, group_windows, output_columns, parse_select, source_tables


class SpecProblem(KappaError):
    """One problem in one spec file."""

    def __init__(self, path: Path | str, field: str, problem: str, fix: str | None = None) -> None:
        self.path = str(path)
        self.field = field
        super().__init__(f"{path}: {field}: {problem}", fix)


class SpecErrors(KappaError):
    """Every problem found in a folder of specs."""

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = problems
        lines = [str(p) for p in problems]
        super().__init__(f"{len(problems)} problem(s) in the pipeline specs:\n" + "\n".join(lines))


def _field(loc: Iterable[object]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def load_pipeline(path: Path) -> LoadedPipeline:
    """Read and validate one spec and its SQL; raise SpecErrors naming every problem."""
    try:
        # libyaml's loader when PyYAML was built with it: ten times faster than pure Python
        raw = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
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
    if not sql_path.is_file():
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
    sql_text = sql_path.read_text()
    problems = _check_sql(path, spec, sql_text)
    if problems:
        raise SpecErrors(problems)
    return LoadedPipeline(spec=spec, sql_text=sql_text, path=str(path))


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
    problems = []
    for attribute, what in (("name", "pipeline name"), ("alias", "target alias")):
        seen: dict[str, str] = {}
        for pipeline in pipelines:
            value = pipeline.name if attribute == "name" else pipeline.spec.target.alias
            if value in seen:
                problems.append(
                    SpecProblem(
                        pipeline.path,
                        attribute if attribute == "name" else "target.alias",
                        f"{what} {value!r} is already used by {seen[value]}",
                        f"give each pipeline its own {what}",
                    )
                )
            else:
                seen[value] = pipeline.path
    return problems
