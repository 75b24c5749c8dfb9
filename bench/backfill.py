"""Backfill benchmark: 30 days of events backfilled into the batch table partition by
partition (one Flink job per day) and with the batched policy (one job per
--days-per-run days), in the same run on the same cluster.

Throughput is events in the 30 days / wall-clock seconds of the whole backfill.
Partition by partition, each day's job reads the log from that day to its end (late
records are included that way), so early days read most of it again; batched runs
read it once per run.

    .venv/bin/python bench/backfill.py [--days 30] [--events-per-day 20000] [--days-per-run 30]

Needs the local stack (`kappa-orch stack up`). Uses its own topic and database and
removes them afterwards.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from sandbox import sandbox  # noqa: E402

from assets import SPECS_DIR  # noqa: E402
from assets.sample_events import START_MS, sample_events  # noqa: E402
from kappa_orch.lifecycle.batch import consecutive_runs, run_batch  # noqa: E402
from kappa_orch.lifecycle.services import Services  # noqa: E402
from kappa_orch.spec.load import load_pipeline  # noqa: E402


def backfill(pipeline, days, per_run, **resources) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    rows = 0
    runs = consecutive_runs(days, per_run)
    for run_days in runs:
        rows += sum(
            run_batch(
                pipeline, run_days, Services(resources["kafka"], resources["flink"], resources["warehouse"])
            ).rows_per_day.values()
        )
    return time.monotonic() - started, rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--events-per-day", type=int, default=20_000)
    parser.add_argument("--days-per-run", type=int, default=30)
    args = parser.parse_args()
    with sandbox() as box:
        kafka, flink, warehouse, topic, folder = box.kafka, box.flink, box.warehouse, box.topic, box.folder
        raw = yaml.safe_load((SPECS_DIR / "daily_spend.yaml").read_text())
        raw["sources"][0]["topic"] = topic
        (folder / "daily_spend.yaml").write_text(yaml.safe_dump(raw))
        (folder / "daily_spend.sql").write_text((SPECS_DIR / "daily_spend.sql").read_text())
        pipeline = load_pipeline(folder / "daily_spend.yaml")
        total = args.days * args.events_per_day
        print(f"producing {total:,} events over {args.days} days to {topic} ...", flush=True)
        step = 86_400_000 // args.events_per_day
        for start in range(0, total, 200_000):
            count = min(200_000, total - start)
            events = sample_events(count, seed=start + 1, start_ms=START_MS + start * step, step_ms=step)
            kafka.produce(
                topic, events.authorizations, key=lambda e: e["account"], timestamp_ms=lambda e: e["ts"]
            )  # type: ignore[index]
        days = [date(2026, 1, 1) + timedelta(days=i) for i in range(args.days)]
        resources = {"kafka": kafka, "flink": flink, "warehouse": warehouse}

        print(f"partition by partition: {args.days} Flink jobs ...", flush=True)
        single_s, single_rows = backfill(pipeline, days, 1, **resources)
        print(f"batched: {len(consecutive_runs(days, args.days_per_run))} Flink job(s) ...", flush=True)
        batched_s, batched_rows = backfill(pipeline, days, args.days_per_run, **resources)
        assert single_rows == batched_rows, (single_rows, batched_rows)
        print()
        print(f"events backfilled            {total:>12,} ({args.days} days, {single_rows:,} rows)")
        jobs = len(consecutive_runs(days, args.days_per_run))
        single_rate, batched_rate = total / single_s, total / batched_s
        print(
            f"partition by partition       {single_rate:>12,.0f} events/s ({single_s:.1f}s, {args.days} jobs)"
        )
        label = f"batched, {args.days_per_run} days a run"
        print(f"{label:<29}{batched_rate:>12,.0f} events/s ({batched_s:.1f}s, {jobs} jobs)")
        print(f"ratio (batched / per day)    {single_s / batched_s:>12.1f}")


if __name__ == "__main__":
    main()
