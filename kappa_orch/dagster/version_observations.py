"""What the observation sensor reports on a pipeline's versions asset each tick (pure):
one observation per pipeline, its series by role (live, candidate, retained) and a table
of every watched version and the newest failed ones (issue 29, point 5: its page's
Overview is the live version's, and a kept rollback target is not plotted as a
candidate)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dagster import AssetObservation, MetadataValue, TableColumn, TableRecord, TableSchema

from kappa_orch.dagster.answers import StreamAnswers
from kappa_orch.dagster.translator import DEFAULT_TRANSLATOR, KappaTranslator
from kappa_orch.registry import store as registry
from kappa_orch.spec.model import LoadedPipeline

# the failed versions a pipeline's versions table lists (the newest)
FAILED_SHOWN = 3


def role_of(row: registry.VersionRow, live: dict[str, int]) -> str:
    """What a version is to its alias: `live`; `candidate` (deploying, catching up, or
    gated and not yet swapped in); `retained` (a replaced version kept as a rollback
    target); `failed`; or its state."""
    serving = live.get(row.pipeline)
    if serving == row.version:
        return "live"
    if row.state in (registry.DEPLOYING, registry.CATCHING_UP):
        return "candidate"
    if row.state == registry.READY:
        return "candidate" if serving is None or row.version > serving else "retained"
    return "failed" if row.state == registry.FAILED else str(row.state)


def stream_observations(
    watched: Sequence[tuple[LoadedPipeline, registry.VersionRow]],
    answers: StreamAnswers,
    live: dict[str, int],
    translator: KappaTranslator = DEFAULT_TRANSLATOR,
    progress: dict[tuple[str, int], dict[str, float]] | None = None,
    job_url: Callable[[str], str] | None = None,
    inputs: dict[tuple[str, int], tuple[int, int, int]] | None = None,
    failed: Sequence[registry.VersionRow] = (),
) -> list[AssetObservation]:
    """One observation per pipeline with watched versions (pure), so its page's Overview
    is the live version's. The live version's numbers are plotted as `lag_total`,
    `checkpoint_age_s`, ...; a candidate's as `candidate/lag_total`, ...; a retained
    rollback target's as `retained/...`: series never interleave. The live version's
    labels (text, not plotted; the newest version's when none is live) and `versions`, a
    table of every watched version and its role. `inputs`: what each version's job has
    read and dead-lettered (`registry.input_totals`), plotted as `input_records` and
    `dead_lettered` (observed each tick, not frozen at the gate). `failed`: failed
    versions (the table lists each pipeline's newest FAILED_SHOWN of them, role `failed`)."""
    by_pipeline: dict[str, list[tuple[LoadedPipeline, registry.VersionRow]]] = {}
    for pipeline, row in watched:
        by_pipeline.setdefault(pipeline.name, []).append((pipeline, row))
    observations = []
    for mine in by_pipeline.values():
        metadata: dict[str, object] = {}
        for pipeline, row in mine:
            series = _version_series(pipeline, row, answers)
            series.update((progress or {}).get((row.pipeline, row.version), {}))
            counted = (inputs or {}).get((row.pipeline, row.version))
            if counted is not None:
                series["input_records"], series["dead_lettered"] = counted[0], counted[1]
            role = role_of(row, live)
            prefix = "" if role == "live" else f"{role}/"
            metadata.update({f"{prefix}{k}": v for k, v in series.items()})
        pipeline, shown = max(mine, key=lambda pr: (role_of(pr[1], live) == "live", pr[1].version))
        metadata.update(_version_labels(shown, answers, role_of(shown, live) == "live", job_url))
        gone = sorted((r for r in failed if r.pipeline == pipeline.name), key=lambda r: -r.version)
        metadata["versions"] = _versions_table([r for _, r in mine] + gone[:FAILED_SHOWN], answers, live)
        key = translator.key("versions", pipeline.spec)
        observations.append(AssetObservation(asset_key=key, metadata=metadata))  # type: ignore[arg-type]
    return observations


def _versions_table(
    rows: Sequence[registry.VersionRow], answers: StreamAnswers, live: dict[str, int]
) -> MetadataValue:
    """Every watched version now: its role, state, job and table (ids as text)."""
    columns = ["version", "role", "state", "job_state", "flink_job_id", "table"]
    records = [
        TableRecord(
            {
                "version": f"v{r.version}",
                "role": role_of(r, live),
                "state": str(r.state),
                "job_state": answers.job_states.get(
                    r.flink_job_id or "", "-" if r.state == registry.FAILED else "UNKNOWN"
                ),
                "flink_job_id": r.flink_job_id or "-",
                "table": r.physical_table,
            }
        )
        for r in sorted(rows, key=lambda r: r.version, reverse=True)
    ]
    return MetadataValue.table(records, TableSchema(columns=[TableColumn(c, "string") for c in columns]))


def _version_series(
    pipeline: LoadedPipeline, row: registry.VersionRow, answers: StreamAnswers
) -> dict[str, float]:
    """A version's numbers: lag per partition and in total, checkpoint age, late records."""
    job_id = row.flink_job_id or ""
    series: dict[str, float] = {}
    total = 0
    for source in pipeline.spec.sources:
        for partition, lag in sorted(answers.lags.get((row.group_id, source.topic), {}).items()):
            series[f"lag/{source.topic}/{partition}"] = lag
            total += lag
    series["lag_total"] = total
    checkpoint = answers.checkpoints.get(job_id)
    if checkpoint is not None:
        series["checkpoint_age_s"] = round(
            max(0, answers.observed_at_ms - checkpoint.completed_at_ms) / 1000, 1
        )
    late = answers.late_records.get(job_id)
    if late is not None:
        series["late_records_total"] = sum(late.values())
        for operator, dropped in sorted(late.items()):
            series[f"late_records/{operator}"] = dropped
    return series


def _version_labels(
    row: registry.VersionRow, answers: StreamAnswers, is_live: bool, job_url: Callable[[str], str] | None
) -> dict[str, object]:
    """What identifies the version and its job (text, not plotted)."""
    job_id = row.flink_job_id or ""
    labels: dict[str, object] = {
        "version": MetadataValue.text(str(row.version)),
        "state": str(row.state),
        "live": is_live,
        "flink_job_id": MetadataValue.text(job_id),
        "job_state": answers.job_states.get(job_id, "UNKNOWN"),
    }
    if job_url is not None and job_id:
        labels["flink_job"] = MetadataValue.url(job_url(job_id))
    checkpoint = answers.checkpoints.get(job_id)
    if checkpoint is not None:
        labels["checkpoint_id"] = MetadataValue.text(str(checkpoint.checkpoint_id))
    exception = answers.job_exceptions.get(job_id)
    if exception:
        labels["flink_exception"] = MetadataValue.text(exception[:5000])
    return labels
