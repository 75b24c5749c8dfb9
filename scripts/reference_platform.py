"""The main job: the reference payments platform end to end on the local stack.

Creates the topics, deploys the reference pipelines through Dagster (recorded in the
Dagster instance under .kappa/dagster, so the UI shows the runs), produces sample
events in batches (Kafka timestamps = event times) and shows the serving tables
filling; then ships a fix of daily_spend's SQL as a reprocess (a replay into a new
version: catch-up, gate, swap), backfills its batch table, and prints where to look
in the UI.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DAGSTER_HOME", str(ROOT / ".kappa" / "dagster"))
Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
if not (Path(os.environ["DAGSTER_HOME"]) / "dagster.yaml").exists():
    (Path(os.environ["DAGSTER_HOME"]) / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

from dagster import AssetsDefinition, DagsterInstance  # noqa: E402
from sqlalchemy import text  # noqa: E402

from assets.sample_events import AUTHORIZATIONS_TOPIC, SETTLEMENTS_TOPIC, sample_events  # noqa: E402
from definitions import defs  # noqa: E402
from kappa_orch.cli.operate import run_in_foreground  # noqa: E402
from kappa_orch.lifecycle.status import pipeline_status  # noqa: E402
from kappa_orch.lifecycle.topics import check_topics, topic_needs  # noqa: E402
from kappa_orch.spec.load import load_pipelines  # noqa: E402
from resources import CONFIG, build_resources  # noqa: E402

PIPELINES = load_pipelines(CONFIG.specs)
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: the events' first event time
STEP_MS = 2_000  # between two authorizations' event times


# daily_spend's previous release counted declined authorizations too; the repo's SQL
# fixes that, and the demo ships the fix the Kappa way: a replay into a new version
PREVIOUS_DAILY_SPEND = "WHERE status IN ('approved', 'declined')"
CURRENT_DAILY_SPEND = "WHERE status = 'approved'"
UI = "http://127.0.0.1:3000"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=60_000, help="authorizations to produce")
    parser.add_argument("--batches", type=int, default=4, help="batches to produce them in")
    args = parser.parse_args()

    resources = build_resources(resolved=True)
    kafka, flink, warehouse = resources["kafka"], resources["flink"], resources["warehouse"]
    create_topics(kafka)
    first_run = deploy_previous_release(resources, warehouse)
    produce(kafka, warehouse, args.events, args.batches)
    wait_for_catch_up(kafka, flink, warehouse)
    if first_run:
        reprocess_the_fix(resources, warehouse)
    else:
        print("[5/6] the fix of daily_spend went live in an earlier run: no reprocess this time")
    backfill(resources, args.events)
    where_to_look(kafka, flink, warehouse)


def create_topics(kafka: Any) -> None:
    print("[1/6] topics (as `kappa-orch topics --create`: the partitions and history the specs need)")
    needs, _ = topic_needs(PIPELINES, datetime.now(UTC).date())
    for report in check_topics(
        needs,
        kafka,
        create=True,
        default_partitions=CONFIG.topic_partitions,
        default_retention_ms=CONFIG.topic_retention_ms(),
    ):
        state = "created" if report.created else "exists"
        print(f"      {report.need.topic}: {state}" + "".join(f"; {p}" for p in report.problems))


def deploy_previous_release(resources: dict[str, Any], warehouse: Any) -> bool:
    """The first run deploys the previous release (daily_spend counting declined
    authorizations too); later runs deploy the current one (nothing to do when in sync).
    True on the first run."""
    from kappa_orch import build_kappa_definitions
    from kappa_orch.registry import store as registry

    with registry.session(warehouse) as conn:
        first_run = "daily_spend" not in registry.live_versions(conn)
    definitions = defs
    if first_run:
        folder = ROOT / ".kappa" / "demo" / "previous-release"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(CONFIG.specs, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
        sql = folder / "daily_spend.sql"
        sql.write_text(sql.read_text().replace(CURRENT_DAILY_SPEND, PREVIOUS_DAILY_SPEND))
        definitions = build_kappa_definitions(folder, config=CONFIG)
        print("[2/6] deploying the reference pipelines, daily_spend at its previous release (Dagster run)")
    else:
        print("[2/6] deploying the reference pipelines (Dagster run; nothing to do when in sync)")
    # the streaming assets; batch tables (partitioned) are backfilled in step 6
    runnable = [
        a for a in definitions.assets or [] if isinstance(a, AssetsDefinition) and not a.partitions_def
    ]
    started = time.monotonic()
    result = run_in_foreground(runnable, resources=resources, instance=DagsterInstance.get())
    if not result.success:
        sys.exit(f"the deploy run failed; its log: the run {result.run_id} in the Dagster UI")
    print(f"      deployed in {time.monotonic() - started:.1f}s")
    return first_run


def produce(kafka: Any, warehouse: Any, count: int, batches: int) -> None:
    print(f"[3/6] producing {count:,} authorizations in {batches} batches (Kafka timestamps = event times)")
    seed = int(time.time())  # every run adds new events; a re-run grows the tables
    per_batch = count // batches
    for batch in range(batches):
        events = sample_events(
            per_batch, seed=seed + batch, start_ms=START_MS + batch * per_batch * STEP_MS, step_ms=STEP_MS
        )
        t0 = time.monotonic()
        # the record's timestamp is the event's time: what the late-data sensor reads
        kafka.produce(
            AUTHORIZATIONS_TOPIC,
            events.authorizations,
            key=lambda e: e["account"],
            timestamp_ms=lambda e: e["ts"],
        )
        kafka.produce(
            SETTLEMENTS_TOPIC, events.settlements, key=lambda e: e["auth_id"], timestamp_ms=lambda e: e["ts"]
        )
        rate = len(events.authorizations) / (time.monotonic() - t0)
        # a few broken events, as real producers send them: they go to the dead-letter topics
        kafka.produce(AUTHORIZATIONS_TOPIC, BROKEN)
        print(
            f"      batch {batch + 1}: {len(events.authorizations):,} authorizations ({rate:,.0f}/s)"
            f" + {len(BROKEN)} broken events"
        )
        time.sleep(3)
        show_counts(warehouse)


def wait_for_catch_up(kafka: Any, flink: Any, warehouse: Any) -> None:
    print("[4/6] waiting for the jobs to catch up")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        statuses = pipeline_status(PIPELINES, kafka=kafka, flink=flink, warehouse=warehouse)
        lag = sum(v.lag or 0 for s in statuses for v in s.versions)
        if lag == 0:
            break
        print(f"      consumer lag {lag:,} (as committed at the jobs' last checkpoints)")
        time.sleep(3)
    time.sleep(3)  # the JDBC sinks flush every second
    show_counts(warehouse)


def reprocess_the_fix(resources: dict[str, Any], warehouse: Any) -> None:
    """daily_spend's current SQL (approved only) replayed from the log into a new version:
    catch-up, gate, swap; the same run the reprocess sensor or `kappa-orch reprocess` makes."""
    from kappa_orch import alias_key, version_key
    from kappa_orch.registry import store as registry

    print("[5/6] reprocess: daily_spend's SQL now counts approved authorizations only (Dagster run)")
    spec = next(p.spec for p in PIPELINES if p.name == "daily_spend")
    started = time.monotonic()
    result = run_in_foreground(
        [a for a in defs.assets or [] if isinstance(a, AssetsDefinition) and not a.partitions_def],
        selection=[version_key(spec), alias_key(spec)],
        resources=resources,
        instance=DagsterInstance.get(),
        tags={"kappa/reason": "demo: the fix of daily_spend"},
    )
    if not result.success:
        sys.exit(f"the reprocess run failed; its log: the run {result.run_id} in the Dagster UI")
    with registry.session(warehouse) as conn:
        last = registry.swap_history(conn, "daily_spend")[-1]
    print(
        f"      v{last['from_version']} -> v{last['to_version']} swapped in "
        f"{time.monotonic() - started:.1f}s (run {result.run_id})"
    )


def backfill(resources: dict[str, Any], count: int) -> None:
    """The days the events cover, recomputed into daily_spend's batch table (a Dagster run each)."""
    first = datetime.fromtimestamp(START_MS / 1000, UTC).date()
    last = datetime.fromtimestamp((START_MS + count * STEP_MS) / 1000, UTC).date()
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    print(f"[6/6] backfill of analytics.daily_spend_daily, {days[0]}..{days[-1]} (a Dagster run per day)")
    batch = [a for a in defs.assets or [] if isinstance(a, AssetsDefinition) and a.partitions_def]
    for day in days:
        result = run_in_foreground(
            batch, partition_key=day, resources=resources, instance=DagsterInstance.get()
        )
        if not result.success:
            sys.exit(f"the backfill of {day} failed; its log: the run {result.run_id} in the Dagster UI")
        print(f"      {day}: done")


def where_to_look(kafka: Any, flink: Any, warehouse: Any) -> None:
    from kappa_orch import topic_key

    daily_spend = next(p.spec for p in PIPELINES if p.name == "daily_spend")
    letters = "/".join(topic_key(daily_spend.dead_letter_topic).path)
    for status in pipeline_status(PIPELINES, kafka=kafka, flink=flink, warehouse=warehouse):
        live = next((v for v in status.versions if v.version == status.live_version), None)
        if live is not None:
            print(
                f"      {status.pipeline} v{live.version}: input {live.input:,}, dead-lettered "
                f"{live.dead_lettered:,} -> {status.dead_letter_topic}"
            )
    print(
        "\nThe platform is running. Open the Dagster UI:\n"
        f"  DAGSTER_HOME={os.environ['DAGSTER_HOME']} .venv/bin/dagster dev -w workspace.yaml\n"
        "Where to look:\n"
        f"  {UI}/asset-groups                           the graph: topics -> versions -> aliases\n"
        f"  {UI}/assets/analytics/daily_spend           the alias: live version, swap history (v1 -> v2)\n"
        f"  {UI}/assets/analytics/daily_spend__versions?view=checks   health and gate checks\n"
        f"  {UI}/assets/{letters}   dead letters by reason\n"
        f"  {UI}/runs                                   the deploy, reprocess and backfill runs\n"
        "  https://127.0.0.1:8081                       the Flink UI (jobs named default/kappa:...),\n"
        "                                               with .kappa/secrets/flink-client.pem\n"
        "  .venv/bin/kappa-orch status [--watch]        the same from a terminal\n"
        "  .venv/bin/kappa-orch history daily_spend     every swap: who, when, git sha, run\n"
        "  .venv/bin/kappa-orch lineage daily_spend --format dot   lineage with columns and tags\n"
        "  .kappa/openlineage/events.jsonl              OpenLineage events (alias symlink v1 -> v2)\n"
        "  .venv/bin/kappa-orch stack down              stop everything"
    )


BROKEN = [
    b"{not json",
    b'{"auth_id": "x-1", "merchant": "m-001", "amount_cents": 100, "status": "approved", "ts": "soon"}',
    b'{"auth_id": "x-2", "account": "acct-0001", "merchant": "m-001", "amount_cents": "lots", '
    b'"status": "approved", "ts": 1767225600000}',
]


def show_counts(warehouse: object) -> None:
    with warehouse.connect() as conn:  # type: ignore[attr-defined]
        counts = {
            p.spec.target.alias: conn.execute(
                text(f"SELECT count(*) FROM {p.spec.target.alias}")
            ).scalar_one()
            for p in PIPELINES
        }
    print("      rows: " + ", ".join(f"{alias} {n:,}" for alias, n in counts.items()))


if __name__ == "__main__":
    main()
