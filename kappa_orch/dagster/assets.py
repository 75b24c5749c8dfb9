"""Pipeline specs as Dagster assets: topics, versioned tables and serving aliases.

Per pipeline:
- each source topic is an external asset ``kafka/<topic parts>``, shared by every
  pipeline that reads it;
- ``<schema>/<table>__versions`` is the versioned table: materialising it deploys the
  current fingerprint (its ``code_version``) into ``table__vN`` unless that version
  already runs;
- ``<schema>/<table>`` is the alias: materialising it points the serving view at the
  current fingerprint's version.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    Config,
    MaterializeResult,
    MetadataValue,
    TableColumnDep,
    TableColumnLineage,
    asset,
)
from pydantic import Field as PydanticField

from kappa_orch.dagster.alias_state import alias_metadata, read_aliases
from kappa_orch.dagster.batch_asset import batch_asset
from kappa_orch.dagster.lineage import progress, table_schema, topic_lineage
from kappa_orch.dagster.runs import kappa_step
from kappa_orch.dagster.translator import DEFAULT_TRANSLATOR, KappaAsset, KappaTranslator
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.lifecycle.gate import CHECK_DESCRIPTIONS, GATE_CHECKS, check_fix
from kappa_orch.lifecycle.reprocess import Acceptance, CandidateReport, prepare_candidate
from kappa_orch.lifecycle.services import Services
from kappa_orch.lifecycle.swap import SwapRequest, SwapResult, swap
from kappa_orch.lineage.resource import OpenLineageResource
from kappa_orch.registry import store as registry
from kappa_orch.registry.claims import Claimant, owner_id
from kappa_orch.resources.alerts import AlertResource
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.spec.model import LoadedPipeline, PipelineSpec


def topic_key(topic: str) -> AssetKey:
    """The default translator's key of a topic."""
    return DEFAULT_TRANSLATOR.key("topic", topic=topic)


def version_key(spec: PipelineSpec) -> AssetKey:
    """The default translator's key of a pipeline's versioned table."""
    return DEFAULT_TRANSLATOR.key("versions", spec)


def alias_key(spec: PipelineSpec) -> AssetKey:
    """The default translator's key of a pipeline's alias."""
    return DEFAULT_TRANSLATOR.key("alias", spec)


def batch_key(spec: PipelineSpec) -> AssetKey:
    """The default translator's key of a pipeline's batch table."""
    return DEFAULT_TRANSLATOR.key("batch", spec)


def topic_specs(
    pipelines: Iterable[LoadedPipeline], translator: KappaTranslator = DEFAULT_TRANSLATOR
) -> list[AssetSpec]:
    readers: dict[str, list[str]] = {}
    for pipeline in pipelines:
        for source in pipeline.spec.sources:
            readers.setdefault(source.topic, []).append(pipeline.name)
    return [
        translator.get_asset_spec(KappaAsset("topic", topic=topic)).merge_attributes(
            metadata={"topic": topic, "read_by": ", ".join(sorted(set(names)))}
        )
        for topic, names in sorted(readers.items())
    ]


def dead_letter_specs(
    pipelines: Iterable[LoadedPipeline], translator: KappaTranslator = DEFAULT_TRANSLATOR
) -> list[AssetSpec]:
    """Each dead-letter topic, downstream of the versions that write it (a topic that is
    also some pipeline's source is that source's asset already)."""
    pipelines = list(pipelines)
    sources = {s.topic for p in pipelines for s in p.spec.sources}
    writers: dict[str, list[LoadedPipeline]] = {}
    for pipeline in pipelines:
        if pipeline.spec.dead_letter_topic not in sources:
            writers.setdefault(pipeline.spec.dead_letter_topic, []).append(pipeline)
    return [
        translator.get_asset_spec(KappaAsset("dead_letters", names[0].spec, topic)).merge_attributes(
            deps=[translator.key("versions", p.spec) for p in names],
            metadata={"topic": topic, "dead_letters_of": ", ".join(p.name for p in names)},
        )
        for topic, names in sorted(writers.items())
    ]


class CandidateConfig(Config):
    """Launchpad settings of a reprocess run's versions asset."""

    accept: list[str] = PydanticField(
        default=[],
        description="Failed non-structural checks (expectations, parity_with_live) to accept for this "
        "candidate; structural checks cannot be accepted.",
    )
    reason: str = PydanticField(
        default="", description="Why the failed checks are right (recorded in the swap)."
    )
    approve: str = PydanticField(
        default="",
        description="The plan id of a change that waits for approval (shown by `kappa-orch plan` and in "
        "the failed run): approves exactly that change, recorded with who launched the run.",
    )
    force: bool = PydanticField(
        default=False,
        description="Replay the log into a new version even though the spec's fingerprint is live (a "
        "rebuild through the same gate and swap), recorded with who launched the run and `reason`.",
    )


def version_asset(
    pipeline: LoadedPipeline,
    *,
    translator: KappaTranslator = DEFAULT_TRANSLATOR,
    claim_wait_s: float = 600.0,
    claim_stale_s: float = 60.0,
) -> AssetsDefinition:
    """The versioned table: materialising it deploys, awaits catch-up and gates the candidate."""
    spec = pipeline.spec
    code_version = pipeline.fingerprint
    given = translator.get_asset_spec(KappaAsset("versions", spec))
    key = given.key

    @asset(
        key=key,
        deps=[translator.key("topic", topic=t) for t in sorted({s.topic for s in spec.sources})],
        code_version=code_version,
        group_name=given.group_name,
        owners=list(given.owners),
        tags=dict(given.tags),
        kinds=set(given.kinds),
        description=given.description,
        check_specs=[
            AssetCheckSpec(name, asset=key, blocking=True, description=CHECK_DESCRIPTIONS[name])
            for name in GATE_CHECKS
        ],
        metadata={**_definition_metadata(pipeline, translator), **given.metadata},
    )
    def _version(
        context: AssetExecutionContext,
        config: CandidateConfig,
        kafka: KafkaResource,
        flink: FlinkResource,
        warehouse: WarehouseResource,
        openlineage: OpenLineageResource,
        alerts: AlertResource,
    ) -> MaterializeResult:  # type: ignore[type-arg]  # Dagster reads this annotation: no generic
        with kappa_step(context):
            report = prepare_candidate(
                pipeline,
                Services(kafka, flink, warehouse, progress(context), openlineage.lineage(), alerts),
                Claimant(owner_id(context.run.run_id), wait_s=claim_wait_s, stale_s=claim_stale_s),
                acceptance=Acceptance(
                    config.accept,
                    config.reason or None,
                    launched_by(context.run.tags),
                    approve=config.approve or None,
                    force=config.force,
                ),
            )
        return MaterializeResult(
            metadata=_version_metadata(spec, report),  # type: ignore[arg-type]
            check_results=_check_results(key, report, spec.name),
        )

    return _version


def launched_by(tags: Mapping[str, str]) -> str | None:
    """Who launched a run: Dagster's launcher (the UI's user), else the CLI's user."""
    user = tags.get("dagster/user") or tags.get("kappa/user")
    return str(user) if user else None


def _definition_metadata(pipeline: LoadedPipeline, translator: KappaTranslator) -> dict[str, object]:
    """What the versions asset shows of its spec: owner, alias, fingerprint, SQL, columns, lineage."""
    spec = pipeline.spec
    return {
        "pipeline": spec.name,
        "owner": spec.owner,
        "alias": spec.target.alias,
        "fingerprint": pipeline.fingerprint,
        "spec": pipeline.path,
        "sql": MetadataValue.md(f"```sql\n{pipeline.sql_text.strip()}\n```"),
        "dagster/column_schema": table_schema(pipeline),
        "dagster/column_lineage": topic_lineage(pipeline, translator),
    }


def _version_metadata(spec: PipelineSpec, report: CandidateReport) -> dict[str, object]:
    """What a reprocess run shows of its candidate: action, version, table, job, catch-up."""
    plan, row = report.deployed.plan, report.version
    metadata: dict[str, object] = {
        "action": plan.action,
        "reason": plan.reason,
        "version": row.version,
        "state": str(row.state),
        "fingerprint": row.fingerprint,
        "physical_table": f"{spec.target.schema_name}.{row.physical_table}",
        "dagster/table_name": f"{spec.target.schema_name}.{row.physical_table}",
        "flink_job_id": row.flink_job_id or "",
        "consumer_group": row.group_id,
    }
    change = report.change
    if change is not None:
        metadata["change"] = change.kind
        metadata["change_path"] = change.applied
        metadata["change_reasons"] = MetadataValue.md("\n".join(f"- {r}" for r in change.reasons) or "-")
        metadata["change_cost"] = MetadataValue.json(
            {
                "events_to_read": change.events_to_read,
                "rows_to_derive": change.rows_to_derive,
                "estimate_s": change.estimate_s,
            }
        )
        metadata["plan_id"] = change.plan_id or ""
    if report.catch_up is not None:
        metadata["catch_up_s"] = round(report.catch_up.seconds, 1)
        metadata["catch_up_events_per_s"] = round(report.catch_up.events_per_s, 1)
    for topic, partitions in report.deployed.deployed_offsets.items():
        metadata[f"offsets_at_deploy/{topic}"] = MetadataValue.json(partitions)
    return metadata


def _check_results(key: AssetKey, report: CandidateReport, pipeline: str) -> list[AssetCheckResult]:
    """The gate's outcomes as the versions asset's blocking checks (an accepted failure warns;
    a failed one carries its fix)."""
    return [
        AssetCheckResult(
            asset_key=key,
            check_name=outcome.name,
            passed=outcome.passed,
            severity=AssetCheckSeverity.WARN if outcome.accepted else AssetCheckSeverity.ERROR,
            description=(f"ACCEPTED by {outcome.accepted}; " if outcome.accepted else "") + outcome.summary,
            metadata={
                "version": report.version.version,
                "summary": outcome.summary,
                **({"accepted": outcome.accepted} if outcome.accepted else {}),
                **({} if outcome.passed or outcome.accepted else {"fix": check_fix(pipeline, outcome.name)}),
                **{
                    k: MetadataValue.json(v) if isinstance(v, list | dict) else v
                    for k, v in outcome.metadata.items()
                },
            },
        )
        for outcome in report.outcomes
    ]


def alias_asset(
    pipeline: LoadedPipeline,
    *,
    translator: KappaTranslator = DEFAULT_TRANSLATOR,
    git_commit: str | None = None,
    dagster_url: str | None = None,
) -> AssetsDefinition:
    """The serving alias: materialising it swaps the view to the current fingerprint's
    version (its metadata: the live version, the last swaps, a link to each swap's run)."""
    spec = pipeline.spec
    code_version = pipeline.fingerprint
    versions = translator.key("versions", spec)

    given = translator.get_asset_spec(KappaAsset("alias", spec))

    @asset(
        key=given.key,
        deps=[versions],
        code_version=code_version,
        group_name=given.group_name,
        owners=list(given.owners),
        tags=dict(given.tags),
        kinds=set(given.kinds),
        description=given.description,
        metadata={
            **given.metadata,
            "pipeline": spec.name,
            "alias": spec.target.alias,
            "dagster/table_name": spec.target.alias,
            "dagster/column_schema": table_schema(pipeline),
            "dagster/column_lineage": TableColumnLineage(
                deps_by_column={
                    c.name: [TableColumnDep(asset_key=versions, column_name=c.name)]
                    for c in spec.target.columns
                }
            ),
        },
    )
    def _alias(
        context: AssetExecutionContext,
        kafka: KafkaResource,
        flink: FlinkResource,
        warehouse: WarehouseResource,
        openlineage: OpenLineageResource,
    ) -> MaterializeResult[None]:
        request = SwapRequest(
            run_id=context.run.run_id,
            git_commit=git_commit,
            by=launched_by(context.run.tags),
            owner=owner_id(context.run.run_id),  # takes over its run's claim from the gate
            check_job=True,
        )
        with kappa_step(context):
            services = Services(kafka, flink, warehouse, progress(context), openlineage.lineage())
            result = swap(pipeline, services, request)
        if not result.swapped:
            progress(context)(f"{spec.target.alias} already serves v{result.to_version}")
        return MaterializeResult(metadata=_swap_metadata(pipeline, result, warehouse, dagster_url))

    return _alias


def _swap_metadata(
    pipeline: LoadedPipeline, result: SwapResult, warehouse: WarehouseResource, dagster_url: str | None
) -> Any:
    """What the alias page shows of a swap: the live version and table, the exact row
    count, and (read back from the registry) the last swaps with links to their runs."""
    spec = pipeline.spec
    with registry.session(warehouse) as conn:
        states = read_aliases(conn, [pipeline], registry.pipeline_versions(conn, spec.name))
    history = alias_metadata(spec.target.schema_name, states[0], dagster_url) if states else {}
    return {
        **history,
        "swapped": result.swapped,
        "from_version": result.from_version if result.from_version is not None else -1,
        "live_version": result.to_version,
        "physical_table": f"{spec.target.schema_name}.{result.physical_table}",
        "fingerprint": pipeline.fingerprint,
        "dagster/row_count": result.rows,
    }


def pipeline_assets(
    pipelines: Sequence[LoadedPipeline],
    *,
    translator: KappaTranslator = DEFAULT_TRANSLATOR,
    git_commit: str | None = None,
    claim_wait_s: float = 600.0,
    claim_stale_s: float = 60.0,
    dagster_url: str | None = None,
) -> list[AssetsDefinition | AssetSpec]:
    """The topic, versioned-table and alias assets of every pipeline.

    `git_commit` is recorded with each swap; a reprocess waits up to `claim_wait_s` for
    another one of the same pipeline, and takes over a claim silent for `claim_stale_s`;
    `dagster_url` (the UI's address) links the alias's swap history to the runs.
    """
    if claim_wait_s < 0 or claim_stale_s <= 0:
        raise ValueError("claim_wait_s must be >= 0 and claim_stale_s > 0")
    assets: list[AssetsDefinition | AssetSpec] = list(topic_specs(pipelines, translator))
    assets += dead_letter_specs(pipelines, translator)
    for pipeline in pipelines:
        assets.append(
            version_asset(
                pipeline, translator=translator, claim_wait_s=claim_wait_s, claim_stale_s=claim_stale_s
            )
        )
        assets.append(
            alias_asset(pipeline, translator=translator, git_commit=git_commit, dagster_url=dagster_url)
        )
        if pipeline.spec.batch is not None:
            assets.append(batch_asset(pipeline, translator=translator))
    return assets
