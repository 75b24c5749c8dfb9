"""What the assets share: progress lines, the column schema, the column lineage to topics."""

import logging
from collections.abc import Callable

from dagster import (
    AssetExecutionContext,
    TableColumn,
    TableColumnDep,
    TableColumnLineage,
    TableSchema,
)

from kappa_orch.dagster.translator import KappaTranslator
from kappa_orch.lineage.graph import field_lineage
from kappa_orch.spec.classify import column_tags
from kappa_orch.spec.model import LoadedPipeline

# progress lines of long work: to the run's log (the Dagster UI) and to this Python
# logger, which the CLI prints when it runs the assets in the foreground
PROGRESS = logging.getLogger("kappa_orch.progress")


def progress(context: AssetExecutionContext) -> Callable[[str], None]:
    def log(message: str) -> None:
        context.log.info(message)
        PROGRESS.info(message)

    return log


def table_schema(pipeline: LoadedPipeline) -> TableSchema:
    """The target columns, with their classifications (own, and from the source columns
    they are computed from) as column tags."""
    tags = column_tags(pipeline.spec, pipeline.sql_text)
    return TableSchema(
        columns=[
            TableColumn(
                name=c.name,
                type=c.type,
                description=c.description or None,
                constraints=None,
                tags=dict.fromkeys(tags.get(c.name, []), "") or None,
            )
            for c in pipeline.spec.target.columns
        ]
    )


def topic_lineage(pipeline: LoadedPipeline, translator: KappaTranslator) -> TableColumnLineage:
    """Per target column, the topic fields it is computed from (Dagster's column lineage)."""
    by_name = {s.name: s for s in pipeline.spec.sources}
    return TableColumnLineage(
        deps_by_column={
            output: [
                TableColumnDep(
                    asset_key=translator.key("topic", topic=by_name[source].topic), column_name=column
                )
                for source, column in pairs
            ]
            for output, pairs in field_lineage(pipeline).items()
        }
    )
