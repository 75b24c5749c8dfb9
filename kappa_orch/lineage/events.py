"""OpenLineage events for what kappa_orch runs (pure: built here, sent by
`lineage_emit`).

Jobs live in the namespace `kappa-orch.<deployment>` and are named per pipeline:
`<pipeline>.stream` (the Flink job of a version: one run per Flink job, the child of the
Dagster or CLI run that deployed it), `<pipeline>.reprocess`, `<pipeline>.swap`,
`<pipeline>.rollback`, `<pipeline>.retire`, `<pipeline>.backfill` and
`<pipeline>.data_quality`. Datasets carry OpenLineage's standard names (Kafka
`kafka://host:port` + topic, PostgreSQL `postgres://host:port` + db.schema.table):
the source topics, the version tables, the alias (with a symlink to the version table it
serves, renewed on every swap), the batch table and the dead-letter topic.

Facets: schema (the version's columns and types), columnLineage (from the Flink SQL),
tags (classifications, per column), symlinks, dataQualityAssertions (gate and scheduled
checks), ownership (the spec's owner), sourceCode and sql (the SELECT), jobType,
parent (the launching run), errorMessage (a failure) and three of kappa_orch's own, each
with its JSON schema in docs/openlineage/: `kappa_version` (pipeline, version,
fingerprint, physical table), `kappa_catchUp` (progress of a catching-up version) and
`kappa_swap` (the versions a swap moved between, and why)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import attr
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    JobFacet,
    RunFacet,
    column_lineage_dataset,
    data_quality_assertions_dataset,
    error_message_run,
    job_type_job,
    lifecycle_state_change_dataset,
    ownership_job,
    parent_run,
    schema_dataset,
    source_code_job,
    sql_job,
    symlinks_dataset,
    tags_dataset,
)

from kappa_orch.lineage.graph import kafka_namespace, postgres_namespace
from kappa_orch.spec.model import LoadedPipeline

PRODUCER = "https://github.com/kappa-orch/kappa_orch/tree/0.1.0"
SCHEMA_BASE = "https://raw.githubusercontent.com/kappa-orch/kappa_orch/main/docs/openlineage/"
INTEGRATION = "KAPPA_ORCH"


@attr.define
class KappaVersionJobFacet(JobFacet):
    """Which version of which pipeline a job runs: its fingerprint and physical table."""

    pipeline: str
    version: int
    fingerprint: str
    physicalTable: str

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA_BASE + "KappaVersionJobFacet.json#/$defs/KappaVersionJobFacet"


@attr.define
class KappaCatchUpRunFacet(RunFacet):
    """A catching-up version's progress: records behind, percent done, rate, time left."""

    lag: int
    catchUpPct: float
    eventsPerS: float
    etaS: float | None = None

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA_BASE + "KappaCatchUpRunFacet.json#/$defs/KappaCatchUpRunFacet"


@attr.define
class KappaSwapRunFacet(RunFacet):
    """A swap's move: the version the alias served before (None: its first) and now."""

    fromVersion: int | None
    toVersion: int
    reason: str

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA_BASE + "KappaSwapRunFacet.json#/$defs/KappaSwapRunFacet"


@dataclass(frozen=True)
class Names:
    """Where the datasets live and how this deployment's jobs are named."""

    deployment: str
    kafka: str  # kafka://host:port
    postgres: str  # postgres://host:port
    database: str

    @classmethod
    def of(cls, *, deployment: str, bootstrap: str, warehouse_url: str) -> Names:
        postgres, database = postgres_namespace(warehouse_url)
        return cls(deployment, kafka_namespace(bootstrap), postgres, database)

    @property
    def namespace(self) -> str:
        return f"kappa-orch.{self.deployment}"

    def table(self, schema: str, table: str) -> tuple[str, str]:
        return self.postgres, f"{self.database}.{schema}.{table}"

    def topic(self, topic: str) -> tuple[str, str]:
        return self.kafka, topic


@dataclass(frozen=True)
class ParentRun:
    """The run that launched this one (a Dagster run, or a CLI command)."""

    namespace: str
    job: str
    run_id: str

    def facet(self) -> parent_run.ParentRunFacet:
        return parent_run.ParentRunFacet(
            run=parent_run.Run(runId=self.run_id), job=parent_run.Job(namespace=self.namespace, name=self.job)
        )


def run_uuid(text: str | None = None) -> str:
    """A run id: stable for the same `text` (a Flink job id, a Dagster run id that is
    not a UUID), else new."""
    if text is None:
        return str(uuid.uuid4())
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kappa-orch:{text}"))


def now() -> str:
    return datetime.now(UTC).isoformat()


# Flink built-ins the lineage parser does not know by name (not UDFs)
FLINK_FUNCTIONS = frozenset(
    {"TABLE", "DESCRIPTOR", "TUMBLE", "HOP", "CUMULATE", "SESSION", "PROCTIME", "CURRENT_WATERMARK"}
    | {f"{w}_{p}" for w in ("TUMBLE", "HOP", "SESSION") for p in ("START", "END", "ROWTIME", "PROCTIME")}
    | {"TO_TIMESTAMP_LTZ", "DATE_FORMAT", "JSON_VALUE", "JSON_QUERY", "UNIX_TIMESTAMP", "FROM_UNIXTIME"}
)


@dataclass(frozen=True)
class Columns:
    """What kappa_orch knows of a pipeline's target columns: types, the source fields each
    is computed from, tags, and why the lineage is incomplete (None: complete)."""

    types: dict[str, str]
    descriptions: dict[str, str]
    lineage: dict[str, list[tuple[str, str]]]
    tags: dict[str, list[str]]
    problem: str | None


def columns_of(pipeline: LoadedPipeline) -> Columns:
    """The target columns of a pipeline; when the SQL's column lineage cannot be computed
    (a UDF, an unknown column, SQL sqlglot cannot follow), what is known and the reason."""
    from kappa_orch.lineage.graph import field_lineage
    from kappa_orch.spec.classify import column_tags

    spec = pipeline.spec
    types = {c.name: c.type for c in spec.target.columns}
    descriptions = {c.name: c.description for c in spec.target.columns}
    try:
        lineage = field_lineage(pipeline)
        tags = column_tags(spec, pipeline.sql_text)
    except Exception as exc:  # the SQL is Flink's to judge; lineage only describes it
        own = {c.name: sorted(c.tags) for c in spec.target.columns}
        return Columns(types, descriptions, {}, own, f"column lineage not computed: {exc}")
    return Columns(types, descriptions, lineage, tags, _unseen(pipeline.sql_text))


def _unseen(sql: str) -> str | None:
    """What the column lineage cannot see through: functions sqlglot does not know (UDFs:
    their columns are taken to derive from their arguments) and `*` (None: nothing)."""
    from sqlglot import exp

    from kappa_orch.spec.sql import parse_select

    query = parse_select(sql)
    problems = []
    udfs = sorted({f.name.upper() for f in query.find_all(exp.Anonymous)} - FLINK_FUNCTIONS)
    if udfs:
        problems.append(
            f"function(s) {', '.join(udfs)} are not known to the lineage parser (UDFs?): their output "
            "columns are taken to derive from their arguments"
        )
    if any(not isinstance(star.parent, exp.Count) for star in query.find_all(exp.Star)):
        problems.append("`*` selects columns the lineage cannot name: list them")
    return "; ".join(problems) or None


def _tags(tags: Mapping[str, Sequence[str]]) -> tags_dataset.TagsDatasetFacet:
    return tags_dataset.TagsDatasetFacet(
        tags=[
            tags_dataset.TagsDatasetFacetFields(key=tag, value="true", source="kappa_orch", field=column)
            for column, found in tags.items()
            for tag in found
        ]
    )


def _schema(types: Mapping[str, str], descriptions: Mapping[str, str]) -> schema_dataset.SchemaDatasetFacet:
    return schema_dataset.SchemaDatasetFacet(
        fields=[
            schema_dataset.SchemaDatasetFacetFields(name=n, type=t, description=descriptions.get(n) or None)
            for n, t in types.items()
        ]
    )


def source_datasets(pipeline: LoadedPipeline, names: Names) -> list[InputDataset]:
    """The pipeline's source topics, with their declared fields and tags."""
    found = []
    for source in pipeline.spec.sources:
        namespace, name = names.topic(source.topic)
        facets: dict[str, Any] = {
            "schema": _schema(
                {c.name: c.type for c in source.columns}, {c.name: c.description for c in source.columns}
            )
        }
        if any(c.tags for c in source.columns):
            facets["tags"] = _tags({c.name: c.tags for c in source.columns})
        found.append(InputDataset(namespace=namespace, name=name, facets=facets))
    return found


def _table_facets(columns: Columns) -> dict[str, Any]:
    """A table of the pipeline's columns: its schema, and its tags when any column has some."""
    facets: dict[str, Any] = {"schema": _schema(columns.types, columns.descriptions)}
    if any(columns.tags.values()):
        facets["tags"] = _tags(columns.tags)
    return facets


def version_dataset(
    pipeline: LoadedPipeline, names: Names, physical_table: str, columns: Columns, *, lineage: bool = True
) -> OutputDataset:
    """A version table: its schema, tags and (as an output of the stream job) column lineage."""
    spec = pipeline.spec
    namespace, name = names.table(spec.target.schema_name, physical_table)
    facets = _table_facets(columns)
    if lineage and columns.lineage:
        facets["columnLineage"] = _column_lineage(pipeline, names, columns.lineage)
    return OutputDataset(namespace=namespace, name=name, facets=facets)


def _column_lineage(
    pipeline: LoadedPipeline, names: Names, lineage: Mapping[str, list[tuple[str, str]]]
) -> column_lineage_dataset.ColumnLineageDatasetFacet:
    topics = {s.name: names.topic(s.topic) for s in pipeline.spec.sources}
    return column_lineage_dataset.ColumnLineageDatasetFacet(
        fields={
            column: column_lineage_dataset.Fields(
                inputFields=[
                    column_lineage_dataset.InputField(
                        namespace=topics[source][0], name=topics[source][1], field=field
                    )
                    for source, field in deps
                    if source in topics
                ]
            )
            for column, deps in lineage.items()
            if deps
        }
    )


def alias_dataset(
    pipeline: LoadedPipeline, names: Names, served_table: str | None, columns: Columns
) -> OutputDataset:
    """The alias view; its symlink names the version table it serves, for consumers to follow."""
    spec = pipeline.spec
    namespace, name = names.table(spec.target.schema_name, spec.target.table_name)
    facets = _table_facets(columns)
    if served_table is not None:
        target_ns, target = names.table(spec.target.schema_name, served_table)
        facets["symlinks"] = symlinks_dataset.SymlinksDatasetFacet(
            identifiers=[symlinks_dataset.Identifier(namespace=target_ns, name=target, type="TABLE")]
        )
        facets["columnLineage"] = column_lineage_dataset.ColumnLineageDatasetFacet(
            fields={
                c: column_lineage_dataset.Fields(
                    inputFields=[column_lineage_dataset.InputField(namespace=target_ns, name=target, field=c)]
                )
                for c in columns.types
            }
        )
    return OutputDataset(namespace=namespace, name=name, facets=facets)


def topic_output(names: Names, topic: str) -> OutputDataset:
    namespace, name = names.topic(topic)
    return OutputDataset(namespace=namespace, name=name)


def assertions(outcomes: Sequence[Any]) -> data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet:
    """The gate's or a scheduled run's outcomes (objects with name, passed, summary)."""
    return data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
        assertions=[
            data_quality_assertions_dataset.Assertion(
                assertion=o.name,
                success=bool(o.passed),
                severity="error",
                description=str(getattr(o, "summary", "") or "")[:1000] or None,
            )
            for o in outcomes
        ]
    )


def job(
    names: Names,
    pipeline: LoadedPipeline,
    action: str,
    *,
    streaming: bool = False,
    version: tuple[int, str, str] | None = None,
) -> Job:
    """The job `<pipeline>.<action>` with its type, owner and SQL (and, given (version,
    fingerprint, physical table), the kappa_version facet)."""
    spec = pipeline.spec
    facets: dict[str, Any] = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="STREAMING" if streaming else "BATCH", integration=INTEGRATION, jobType="JOB"
        ),
        "ownership": ownership_job.OwnershipJobFacet(
            owners=[ownership_job.Owner(name=spec.owner, type="OWNER")]
        ),
    }
    if action in ("stream", "reprocess", "backfill"):
        facets["sourceCode"] = source_code_job.SourceCodeJobFacet(
            language="flink-sql", sourceCode=pipeline.sql_text
        )
        facets["sql"] = sql_job.SQLJobFacet(query=pipeline.sql_text)
    if version is not None:
        facets["kappa_version"] = KappaVersionJobFacet(
            pipeline=spec.name, version=version[0], fingerprint=version[1], physicalTable=version[2]
        )
    return Job(namespace=names.namespace, name=f"{spec.name}.{action}", facets=facets)


def event(
    state: str,
    job_: Job,
    run_id: str,
    *,
    parent: ParentRun | None = None,
    inputs: Sequence[InputDataset] = (),
    outputs: Sequence[OutputDataset] = (),
    run_facets: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> RunEvent:
    """One run event (START, RUNNING, COMPLETE, FAIL, ABORT, OTHER)."""
    facets: dict[str, Any] = dict(run_facets or {})
    if parent is not None:
        facets["parent"] = parent.facet()
    if error is not None:
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=error[:4000], programmingLanguage="python"
        )
    return RunEvent(
        eventType=RunState[state],
        eventTime=now(),
        run=Run(runId=run_id, facets=facets),
        job=job_,
        inputs=list(inputs),
        outputs=list(outputs),
        producer=PRODUCER,
    )


def dropped(names: Names, schema: str, table: str) -> OutputDataset:
    """A table a retire drops (lifecycleStateChange DROP)."""
    namespace, name = names.table(schema, table)
    return OutputDataset(
        namespace=namespace,
        name=name,
        facets={
            "lifecycleStateChange": lifecycle_state_change_dataset.LifecycleStateChangeDatasetFacet(
                lifecycleStateChange=lifecycle_state_change_dataset.LifecycleStateChange.DROP
            )
        },
    )
