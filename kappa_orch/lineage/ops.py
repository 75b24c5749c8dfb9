"""What each kappa_orch operation tells OpenLineage: a deploy (the Flink job's run
starts, as a child of the launching run), a catching-up version (RUNNING, with
progress), a reprocess (START, COMPLETE or FAIL with the gate's assertions), a swap or
rollback (the alias's symlink moves to the version it now serves), a retire (the table is
dropped, the Flink job's run ends), a backfill and a scheduled check run.

Each function returns at once and never raises: with no emitter configured it does
nothing; an event that cannot be built is warned about (naming the pipeline and the
reason) and the run goes on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

from openlineage.client.event_v2 import InputDataset

from kappa_orch.lineage import events as ev
from kappa_orch.lineage.emit import Emitter, parent
from kappa_orch.spec.model import LoadedPipeline

_WARNED: set[tuple[str, str]] = set()


def _emit(
    emitter: Emitter | None, pipeline: LoadedPipeline, build: Callable[[Emitter], Sequence[Any]]
) -> None:
    if emitter is None:
        return
    try:
        events = build(emitter)
    except Exception as exc:  # lineage describes a run, it never stops one
        emitter.warn(
            f"OpenLineage: {pipeline.name}: no event sent ({type(exc).__name__}: {exc}); the run goes on"
        )
        return
    for event in events:
        emitter.emit(event, pipeline.name)


def _columns(emitter: Emitter, pipeline: LoadedPipeline) -> ev.Columns:
    """The target columns; an incomplete column lineage is warned about once per pipeline
    and SQL (the events carry what is known)."""
    columns = ev.columns_of(pipeline)
    key = (pipeline.name, pipeline.sql_text)
    if columns.problem and key not in _WARNED:
        _WARNED.add(key)
        emitter.warn(
            f"OpenLineage: {pipeline.name}: {columns.problem}; events carry the lineage that is known"
        )
    return columns


def _stream_run(flink_job_id: str) -> str:
    return ev.run_uuid(f"flink:{flink_job_id}")


def _engine() -> Any:
    from openlineage.client.facet_v2 import processing_engine_run

    return processing_engine_run.ProcessingEngineRunFacet(version="2.2.1", name="flink")


class CatchUpReading(NamedTuple):
    lag: int
    pct: float
    events_per_s: float
    eta_s: float | None


def _nominal(days: Sequence[date]) -> Any:
    from datetime import UTC, datetime, time, timedelta

    from openlineage.client.facet_v2 import nominal_time_run

    first = datetime.combine(min(days), time(), UTC)
    last = datetime.combine(max(days) + timedelta(days=1), time(), UTC)
    return nominal_time_run.NominalTimeRunFacet(
        nominalStartTime=first.isoformat(), nominalEndTime=last.isoformat()
    )


@dataclass(frozen=True)
class Lineage:
    """What kappa_orch's operations tell OpenLineage, through one emitter (None: nothing).
    A lifecycle step finds it in its Services; Dagster runs get it from the `openlineage`
    resource, CLI commands from the deployment's configuration."""

    emitter: Emitter | None = None

    def deployed(
        self,
        pipeline: LoadedPipeline,
        version: int,
        fingerprint: str,
        table: str,
        flink_job_id: str,
    ) -> None:
        """A version's Flink job was submitted: its run (a child of the launching run) starts."""

        def build(e: Emitter) -> list[Any]:
            names = e.names
            columns = _columns(e, pipeline)
            job = ev.job(names, pipeline, "stream", streaming=True, version=(version, fingerprint, table))
            outputs = [
                ev.version_dataset(pipeline, names, table, columns),
                ev.topic_output(names, pipeline.spec.dead_letter_topic),
            ]
            return [
                ev.event(
                    "START",
                    job,
                    _stream_run(flink_job_id),
                    parent=parent(e),
                    inputs=ev.source_datasets(pipeline, names),
                    outputs=outputs,
                    run_facets={"processing_engine": _engine()},
                )
            ]

        _emit(self.emitter, pipeline, build)

    def catching_up(
        self,
        pipeline: LoadedPipeline,
        version: int,
        flink_job_id: str,
        reading: CatchUpReading,
    ) -> None:
        """Progress of a catching-up version's Flink job (RUNNING)."""
        lag, pct, events_per_s, eta_s = reading

        def build(e: Emitter) -> list[Any]:
            names = e.names
            job = ev.job(names, pipeline, "stream", streaming=True)
            facet = ev.KappaCatchUpRunFacet(
                lag=lag, catchUpPct=round(pct, 2), eventsPerS=round(events_per_s, 1), etaS=eta_s
            )
            return [ev.event("RUNNING", job, _stream_run(flink_job_id), run_facets={"kappa_catchUp": facet})]

        _emit(self.emitter, pipeline, build)

    def reprocess(
        self,
        pipeline: LoadedPipeline,
        run_id: str,
        state: str,
        *,
        report: Any = None,
        error: str | None = None,
    ) -> None:
        """A reprocess's run: START, then COMPLETE (the candidate passed its gate) or FAIL; the
        candidate version table (`report.version`) carries the gate's assertions
        (`report.outcomes`)."""
        row = report.version if report is not None else None
        outcomes: Sequence[Any] = report.outcomes if report is not None else ()

        def build(e: Emitter) -> list[Any]:
            names = e.names
            version = (row.version, row.fingerprint, row.physical_table) if row is not None else None
            job = ev.job(names, pipeline, "reprocess", version=version)
            inputs = ev.source_datasets(pipeline, names)
            outputs = []
            if row is not None:
                columns = _columns(e, pipeline)
                outputs.append(ev.version_dataset(pipeline, names, row.physical_table, columns))
                if outcomes:
                    checked = ev.version_dataset(pipeline, names, row.physical_table, columns, lineage=False)
                    inputs.append(
                        InputDataset(
                            namespace=checked.namespace,
                            name=checked.name,
                            facets=checked.facets,
                            inputFacets={"dataQualityAssertions": ev.assertions(outcomes)},
                        )
                    )
            return [
                ev.event(state, job, run_id, parent=parent(e), inputs=inputs, outputs=outputs, error=error)
            ]

        _emit(self.emitter, pipeline, build)

    def swapped(self, pipeline: LoadedPipeline, *, to: Any, previous: Any, reason: str) -> None:
        """The alias now serves `to` (a VersionRow): a `swap` run (`rollback` when the reason
        is one), the alias's symlink naming `to`'s table."""

        def build(e: Emitter) -> list[Any]:
            names = e.names
            columns = _columns(e, pipeline)
            action = "rollback" if reason == "rollback" else "swap"
            job = ev.job(names, pipeline, action, version=(to.version, to.fingerprint, to.physical_table))
            source = ev.version_dataset(pipeline, names, to.physical_table, columns, lineage=False)
            inputs = [InputDataset(namespace=source.namespace, name=source.name, facets=source.facets)]
            if previous is not None and previous.physical_table != to.physical_table:
                namespace, name = names.table(pipeline.spec.target.schema_name, previous.physical_table)
                inputs.append(InputDataset(namespace=namespace, name=name))
            alias = ev.alias_dataset(pipeline, names, to.physical_table, columns)
            run_id = ev.run_uuid()
            before = previous.version if previous is not None else None
            moved = ev.KappaSwapRunFacet(fromVersion=before, toVersion=to.version, reason=reason)
            facets = {"kappa_swap": moved}
            return [
                ev.event("START", job, run_id, parent=parent(e), inputs=inputs, outputs=[alias]),
                ev.event(
                    "COMPLETE",
                    job,
                    run_id,
                    parent=parent(e),
                    inputs=inputs,
                    outputs=[alias],
                    run_facets=facets,
                ),
            ]

        _emit(self.emitter, pipeline, build)

    def retired(self, pipeline: LoadedPipeline, row: Any) -> None:
        """A version was retired: its table dropped (lifecycleStateChange DROP), its Flink
        job's run ended (ABORT)."""

        def build(e: Emitter) -> list[Any]:
            names = e.names
            job = ev.job(
                names, pipeline, "retire", version=(row.version, row.fingerprint, row.physical_table)
            )
            run_id = ev.run_uuid()
            dropped = ev.dropped(names, pipeline.spec.target.schema_name, row.physical_table)
            events = [
                ev.event("START", job, run_id, parent=parent(e)),
                ev.event("COMPLETE", job, run_id, parent=parent(e), outputs=[dropped]),
            ]
            if row.flink_job_id:
                stream = ev.job(names, pipeline, "stream", streaming=True)
                events.append(ev.event("ABORT", stream, _stream_run(row.flink_job_id)))
            return events

        _emit(self.emitter, pipeline, build)

    def backfill(
        self,
        pipeline: LoadedPipeline,
        run_id: str,
        state: str,
        days: Sequence[date],
        *,
        error: str | None = None,
    ) -> None:
        """A batch backfill's run over `days`: the source topics into the batch table."""

        def build(e: Emitter) -> list[Any]:
            names = e.names
            spec = pipeline.spec
            job = ev.job(names, pipeline, "backfill")
            columns = _columns(e, pipeline)
            table = spec.batch_table or f"{spec.target.table_name}_daily"
            output = ev.version_dataset(pipeline, names, table, columns)
            facets = {"nominalTime": _nominal(days)} if days else {}
            inputs = ev.source_datasets(pipeline, names)
            return [
                ev.event(
                    state,
                    job,
                    run_id,
                    parent=parent(e),
                    inputs=inputs,
                    outputs=[output],
                    run_facets=facets,
                    error=error,
                )
            ]

        _emit(self.emitter, pipeline, build)

    def checked(
        self,
        pipeline: LoadedPipeline,
        live: Any,
        outcomes: Sequence[Any],
        *,
        batch: bool = False,
    ) -> None:
        """A scheduled data-quality run over the live version: the alias (following its
        symlink; with `batch`, the batch table) as the input, with one assertion per check."""

        def build(e: Emitter) -> list[Any]:
            names = e.names
            columns = _columns(e, pipeline)
            job = ev.job(
                names, pipeline, "data_quality", version=(live.version, live.fingerprint, live.physical_table)
            )
            table = pipeline.spec.batch_table if batch else None
            alias = (
                ev.version_dataset(pipeline, names, table, columns, lineage=False)
                if table
                else ev.alias_dataset(pipeline, names, live.physical_table, columns)
            )
            facets = {k: v for k, v in (alias.facets or {}).items() if k != "columnLineage"}
            checked_input = InputDataset(
                namespace=alias.namespace,
                name=alias.name,
                facets=facets,
                inputFacets={"dataQualityAssertions": ev.assertions(outcomes)},
            )
            run_id = ev.run_uuid()
            return [
                ev.event("START", job, run_id, parent=parent(e), inputs=[checked_input]),
                ev.event("COMPLETE", job, run_id, parent=parent(e), inputs=[checked_input]),
            ]

        _emit(self.emitter, pipeline, build)
