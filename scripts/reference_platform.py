"""The main job: the reference payments platform end to end on the local stack.

Creates the topics, deploys the reference pipelines through Dagster (recorded in the
Dagster instance under .kappa/dagster, so the UI shows the runs), produces sample
events in batches and shows the serving tables filling.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DAGSTER_HOME", str(ROOT / ".kappa" / "dagster"))
Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
if not (Path(os.environ["DAGSTER_HOME"]) / "dagster.yaml").exists():
    (Path(os.environ["DAGSTER_HOME"]) / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

from dagster import AssetsDefinition, DagsterInstance, materialize  # noqa: E402
from sqlalchemy import text  # noqa: E402

from assets.sample_events import AUTHORIZATIONS_TOPIC, SETTLEMENTS_TOPIC, sample_events  # noqa: E402
from definitions import defs  # noqa: E402
from kappa_orch.spec.load import load_pipelines  # noqa: E402
from kappa_orch.status import pipeline_status  # noqa: E402
from kappa_orch.topics import check_topics, topic_needs  # noqa: E402
from resources import CONFIG, build_resources  # noqa: E402

PIPELINES = load_pipelines(CONFIG.specs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=60_000, help="authorizations to produce")
    parser.add_argument("--batches", type=int, default=4, help="batches to produce them in")
    args = parser.parse_args()

    resources = build_resources(resolved=True)
    kafka, flink, warehouse = resources["kafka"], resources["flink"], resources["warehouse"]

    print("[1/4] topics (as `kappa-orch topics --create`: the partitions and history the specs need)")
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

    print("[2/4] deploying the reference pipelines (Dagster run)")
    # the streaming assets; batch tables (partitioned) are backfilled separately
    runnable = [a for a in defs.assets or [] if isinstance(a, AssetsDefinition) and not a.partitions_def]
    started = time.monotonic()
    result = materialize(runnable, resources=resources, instance=DagsterInstance.get())
    if not result.success:
        sys.exit("the deploy run failed; see its log above")
    print(f"      deployed in {time.monotonic() - started:.1f}s")

    print(f"[3/4] producing {args.events:,} authorizations in {args.batches} batches")
    seed = int(time.time())  # every run adds new events; a re-run grows the tables
    per_batch = args.events // args.batches
    for batch in range(args.batches):
        events = sample_events(
            per_batch, seed=seed + batch, start_ms=1_767_225_600_000 + batch * per_batch * 2_000
        )
        t0 = time.monotonic()
        kafka.produce(AUTHORIZATIONS_TOPIC, events.authorizations, key=lambda e: e["account"])
        kafka.produce(SETTLEMENTS_TOPIC, events.settlements, key=lambda e: e["auth_id"])
        rate = len(events.authorizations) / (time.monotonic() - t0)
        # a few broken events, as real producers send them: they go to the dead-letter topics
        kafka.produce(AUTHORIZATIONS_TOPIC, BROKEN)
        print(
            f"      batch {batch + 1}: {len(events.authorizations):,} authorizations ({rate:,.0f}/s)"
            f" + {len(BROKEN)} broken events"
        )
        time.sleep(3)
        show_counts(warehouse)

    print("[4/4] waiting for the jobs to catch up")
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
    for status in pipeline_status(PIPELINES, kafka=kafka, flink=flink, warehouse=warehouse):
        live = next((v for v in status.versions if v.version == status.live_version), None)
        if live is not None:
            print(
                f"      {status.pipeline}: input {live.input:,}, dead-lettered {live.dead_lettered:,}"
                f" -> {status.dead_letter_topic}"
            )
    print(
        "\nThe platform is running. Next:\n"
        "  .venv/bin/kappa-orch status                       live versions, jobs, lag\n"
        f"  DAGSTER_HOME={os.environ['DAGSTER_HOME']} .venv/bin/dagster dev -w workspace.yaml\n"
        "                                                    Dagster UI on http://127.0.0.1:3000\n"
        "  Flink UI                                          http://127.0.0.1:8081\n"
        "  .venv/bin/kappa-orch stack down                   stop everything"
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
