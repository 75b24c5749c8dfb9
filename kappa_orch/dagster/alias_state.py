"""The alias as it is, observed: the live version, its physical table, its row count and
the last swaps, whoever made them (a Dagster run, the CLI's rollback, a repair). The
stream observation sensor reports it when it changes, so the alias page never shows a
version the alias no longer serves: a swap made outside Dagster (the CLI's first deploy
or rollback) as a materialization of the alias (what the asset page shows first), any
other change as an observation."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dagster import AssetMaterialization, AssetObservation, MetadataValue
from sqlalchemy import Connection, text

from kappa_orch.dagster.translator import KappaTranslator
from kappa_orch.registry import store as registry
from kappa_orch.spec.model import LoadedPipeline

SWAPS_SHOWN = 10


@dataclass(frozen=True)
class AliasState:
    """One alias: its live version and table, an estimate of its rows, its last swaps."""

    pipeline: str
    live_version: int
    physical_table: str
    rows: int | None
    swaps: list[dict[str, Any]]  # newest first

    @property
    def signature(self) -> list[object]:
        """What changes when the alias does (the sensor reports it then)."""
        return [self.live_version, self.swaps[0]["id"] if self.swaps else None, self.rows]


def read_aliases(
    conn: Connection, pipelines: Sequence[LoadedPipeline], rows: Sequence[registry.VersionRow]
) -> list[AliasState]:
    """Every live alias, in three queries whatever the number of pipelines. Rows are
    PostgreSQL's live-tuple statistics (`pg_stat_user_tables`): an estimate, no scan."""
    live = registry.live_versions(conn)
    tables = {(r.pipeline, r.version): r.physical_table for r in rows}
    schemas = {p.name: p.spec.target.schema_name for p in pipelines}
    estimates = {
        (str(schema), str(table)): int(n)
        for schema, table, n in conn.execute(
            text("SELECT schemaname, relname, n_live_tup FROM pg_stat_user_tables")
        )
    }
    recent = registry.recent_swaps(conn, [p.name for p in pipelines], SWAPS_SHOWN)
    states = []
    for pipeline in pipelines:
        version = live.get(pipeline.name)
        table = tables.get((pipeline.name, version)) if version is not None else None
        if version is None or table is None:
            continue
        states.append(
            AliasState(
                pipeline=pipeline.name,
                live_version=version,
                physical_table=table,
                rows=estimates.get((schemas[pipeline.name], table)),
                swaps=recent.get(pipeline.name, []),
            )
        )
    return states


def alias_observations(
    pipelines: Sequence[LoadedPipeline],
    states: Sequence[AliasState],
    previous: dict[str, list[object]],
    translator: KappaTranslator,
    dagster_url: str | None = None,
) -> tuple[list[AssetObservation | AssetMaterialization], dict[str, list[object]]]:
    """An event per alias whose state changed since `previous` (pure): a materialization
    when its newest swap was made outside Dagster (it changed what the alias serves, and
    no run reported it), else an observation. With `dagster_url`, a swap made by a
    Dagster run links to the run's page."""
    by_name = {p.name: p for p in pipelines}
    events: list[AssetObservation | AssetMaterialization] = []
    cursor = {}
    for state in states:
        cursor[state.pipeline] = state.signature
        before = previous.get(state.pipeline)
        if before == state.signature:
            continue
        spec = by_name[state.pipeline].spec
        key = translator.key("alias", spec)
        metadata: Any = alias_metadata(spec.target.schema_name, state, dagster_url)
        newest = state.swaps[0] if state.swaps else None
        if (
            newest is not None
            and not by_dagster(newest["run_id"])
            and (not before or before[1] != newest["id"])
        ):
            description = _swap_text(newest)
            events.append(AssetMaterialization(asset_key=key, metadata=metadata, description=description))
        else:
            events.append(AssetObservation(asset_key=key, metadata=metadata))
    return events, cursor


def by_dagster(run_id: str | None) -> bool:
    """Whether a swap was made by a Dagster run (the CLI's own swaps record cli-...)."""
    return bool(run_id) and not str(run_id).startswith("cli-")


def run_url(dagster_url: str | None, run_id: str | None) -> str | None:
    """The page of the Dagster run that made a swap (None for a CLI swap: cli-...)."""
    if not dagster_url or not run_id or not by_dagster(run_id):
        return None
    return f"{dagster_url.rstrip('/')}/runs/{run_id}"


def alias_metadata(schema: str, state: AliasState, dagster_url: str | None = None) -> dict[str, object]:
    """The alias page's numbers and its swap history (newest first)."""
    metadata: dict[str, object] = {
        "live_version": state.live_version,
        "physical_table": f"{schema}.{state.physical_table}",
    }
    if state.rows is not None:
        metadata["dagster/row_count"] = state.rows
    if state.swaps:
        last = state.swaps[0]
        metadata["last_swap_at"] = str(last["swapped_at"])
        metadata["last_swap"] = _swap_text(last)
        metadata["swap_history"] = MetadataValue.md(_history_table(state.swaps, dagster_url))
        link = run_url(dagster_url, last["run_id"])
        if link:
            metadata["last_swap_run"] = MetadataValue.url(link)
    return metadata


def _swap_text(swap: dict[str, Any]) -> str:
    source = f"v{swap['from_version']}" if swap["from_version"] is not None else "-"
    return f"{source} -> v{swap['to_version']} ({swap['reason']}, by {swap['swapped_by'] or '?'})"


def _history_table(swaps: list[dict[str, Any]], dagster_url: str | None) -> str:
    lines = ["| swapped at (UTC) | from | to | reason | by | git | run |", "|---|---|---|---|---|---|---|"]
    for s in swaps:
        source = f"v{s['from_version']}" if s["from_version"] is not None else "-"
        git = (s["git_commit"] or "")[:8]
        link = run_url(dagster_url, s["run_id"])
        run = f"[{s['run_id'][:8]}]({link})" if link else (s["run_id"] or "")
        lines.append(
            f"| {str(s['swapped_at'])[:19]} | {source} | v{s['to_version']} | {s['reason']} | "
            f"{s['swapped_by'] or ''} | {git} | {run} |"
        )
    return "\n".join(lines)
