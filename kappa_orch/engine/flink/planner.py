"""Every pipeline's SELECT planned by Flink's own parser and planner, without a cluster.

One local JVM (pyflink's TableEnvironment, started once for a whole folder of specs)
plans `INSERT INTO <target> <the SELECT>` against tables with exactly the relations the
SELECT sees at run time: each source's declared columns and its event-time attribute
with its watermark, and the target's columns and key. In streaming mode always, and in
batch mode for pipelines with `batch:`. Flink's error is reported with the spec's file
and the line in the SQL file.

Flink's reading is also compared with kappa_orch's own (sqlglot, which fingerprints the
SQL and computes lineage): both must see one statement, the same output columns and the
same source tables, or the spec is refused. What Flink plans is then what kappa_orch
fingerprinted and what it submits.

The relations are datagen and blackhole tables, Flink's built-in connectors: planning
needs no Kafka or JDBC connector jars and no server.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from kappa_orch.engine.flink.sources import interval
from kappa_orch.errors import require
from kappa_orch.spec.load import SpecProblem
from kappa_orch.spec.model import LoadedPipeline, Source
from kappa_orch.spec.sql import output_columns, parse_select, source_tables

SINK = "kappa_sink"
_SCANNED = re.compile(r"table=\[\[default_catalog, default_database, ([^\]]+)\]\]")


def _relation_ddl(source: Source) -> str:
    """The relation the SELECT reads as `source.name`: the declared columns (nullable,
    as the checked view computes them) and the event time with the spec's watermark."""
    columns = [f"`{c.name}` {c.type}" for c in source.columns]
    if source.event_time is not None:
        column = source.event_time.column
        columns.append(f"`{column}` TIMESTAMP_LTZ(3)")
        columns.append(
            f"WATERMARK FOR `{column}` AS `{column}` - {interval(source.event_time.watermark_delay)}"
        )
    body = ",\n  ".join(columns)
    return (
        f"CREATE TEMPORARY TABLE `{source.name}` (\n  {body}\n) "
        "WITH ('connector' = 'datagen', 'number-of-rows' = '1')"
    )


def _sink_ddl(pipeline: LoadedPipeline) -> str:
    target = pipeline.spec.target
    columns = [f"`{c.name}` {c.type}" for c in target.columns]
    columns.append(f"PRIMARY KEY ({', '.join(f'`{k}`' for k in target.primary_key)}) NOT ENFORCED")
    body = ",\n  ".join(columns)
    return f"CREATE TEMPORARY TABLE `{SINK}` (\n  {body}\n) WITH ('connector' = 'blackhole')"


def java_message(exc: BaseException) -> str:
    """The Java exception's own message: py4j wraps it (Py4JJavaError.java_exception),
    pyflink converts some into its own errors whose text is the Java stack trace."""
    java = getattr(exc, "java_exception", None)
    text = str(java.getMessage() or "") if java is not None else str(exc)
    lines = []
    for line in text.strip().splitlines():
        if line.strip().startswith("at ") or line.strip().startswith("Caused by"):
            break  # the stack trace
        if line.strip():
            lines.append(line.strip())
    message = " ".join(lines) or type(exc).__name__
    # "org.apache.flink.table.api.TableException: Sort on ..." -> "Sort on ..."
    message = re.sub(r"^([a-z]+\.)+[A-Za-z]*(Exception|Error): ", "", message)
    # the planner repeats its prefix ("SQL validation failed. SQL validation failed. From line ...")
    message = re.sub(r"^(SQL validation failed\. )+", "", message)
    message = message.replace(f"'default_catalog.default_database.{SINK}'", "the target")
    return message[:800]


class FlinkPlanner:
    """A local Flink planner: environments made once, reused for every pipeline."""

    def __init__(self) -> None:
        require("pyflink", "stack", "Flink's planner (kappa-orch validate)")
        from pyflink.table import EnvironmentSettings, TableEnvironment

        self._streaming = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
        self._batch: Any = None
        self._settings = EnvironmentSettings
        self._table_environment = TableEnvironment

    def _batch_environment(self) -> Any:
        if self._batch is None:
            self._batch = self._table_environment.create(self._settings.in_batch_mode())
        return self._batch

    def problems(self, pipeline: LoadedPipeline) -> list[SpecProblem]:
        """What Flink refuses in the pipeline's SQL, or reads differently than kappa_orch."""
        problems = self._plan(pipeline, self._streaming, "streaming")
        if not problems and pipeline.spec.batch is not None:
            problems = self._plan(pipeline, self._batch_environment(), "batch")
        return problems

    def _plan(self, pipeline: LoadedPipeline, env: Any, mode: str) -> list[SpecProblem]:
        spec = pipeline.spec
        select = pipeline.sql_text.rstrip().rstrip(";")
        relations = [s.name for s in spec.sources] + [SINK]
        try:
            for source in spec.sources:
                env.execute_sql(_relation_ddl(source))
            env.execute_sql(_sink_ddl(pipeline))
            try:
                table = env.sql_query(select)
                columns = list(table.get_schema().get_field_names())
                # the whole statement as the job runs it: the target's types and key, the planner's rules
                plan = env.explain_sql(f"INSERT INTO `{SINK}` {select}")
            except Exception as exc:  # py4j's Py4JJavaError, whatever Flink threw
                where = "" if mode == "streaming" else " in batch mode (the pipeline has `batch:`)"
                return [
                    SpecProblem(
                        pipeline.path,
                        "sql",
                        f"{spec.sql}: Flink refuses the SELECT{where}: {java_message(exc)}",
                        "fix the SELECT or target.columns (line and column numbers are the SQL file's)"
                        + ("" if mode == "streaming" else ", or remove `batch:`"),
                    )
                ]
        finally:
            for name in relations:
                env.execute_sql(f"DROP TEMPORARY TABLE IF EXISTS `{name}`")
        return self._agreement(pipeline, columns, plan)

    @staticmethod
    def _agreement(pipeline: LoadedPipeline, columns: list[str], plan: str) -> list[SpecProblem]:
        query = parse_select(pipeline.sql_text)
        ours, scanned = output_columns(query), set(_SCANNED.findall(plan))
        problems = []
        if columns != ours:
            problems.append(
                SpecProblem(
                    pipeline.path,
                    "sql",
                    f"Flink reads the SELECT's columns as {columns}, kappa_orch as {ours}",
                    "write the SELECT plainly (name every column with AS); report the SQL if it is plain",
                )
            )
        if scanned != source_tables(query):
            problems.append(
                SpecProblem(
                    pipeline.path,
                    "sql",
                    f"Flink reads the tables {sorted(scanned)}, kappa_orch {sorted(source_tables(query))}",
                    "write the SELECT plainly; report the SQL if it is plain",
                )
            )
        return problems


@contextmanager
def flink_planner() -> Iterator[FlinkPlanner]:
    """One planner (one JVM) for a run of `validate`."""
    yield FlinkPlanner()


def plan_pipelines(pipelines: Sequence[LoadedPipeline]) -> list[SpecProblem]:
    """Every pipeline planned by Flink; all problems at once."""
    with flink_planner() as planner:
        return [problem for pipeline in pipelines for problem in planner.problems(pipeline)]
