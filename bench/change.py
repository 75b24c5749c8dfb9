"""Change benchmark: the same log, one cheap change and one breaking change of daily_spend,
each made by the kappa_orch reprocess (deploy, catch-up, gate, swap), timed end to end.

1. v1 replays N events (the live version);
2. v2 renames a column: the compiled plans prove it state-compatible, so v2 starts from
   v1's savepoint with v1's rows copied, and is checked against v1 row for row;
3. v3 adds a filter before the aggregate: breaking, so v3 replays the whole log.

It prints each step's wall time, the records each new version's own job read, and the
ratio of the cheap change's time to the replay's, measured in the same run.

    .venv/bin/python bench/change.py [--events 1000000]

Needs the local stack (`kappa-orch stack up`). Uses its own topic and database and
removes them afterwards.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from sandbox import Sandbox, run_on_events  # noqa: E402
from sqlalchemy import text  # noqa: E402

from assets.sample_events import sample_events  # noqa: E402
from kappa_orch.lifecycle.reprocess import prepare_candidate  # noqa: E402
from kappa_orch.lifecycle.services import Services  # noqa: E402
from kappa_orch.lifecycle.swap import SwapRequest, swap  # noqa: E402
from kappa_orch.registry import store as registry  # noqa: E402
from kappa_orch.registry.claims import Claimant, owner_id  # noqa: E402
from kappa_orch.spec.load import load_pipelines  # noqa: E402


def main() -> None:
    run_on_events(__doc__, run)


def reprocess(box: Sandbox, label: str) -> float:
    """One reprocess of the folder's spec, gated and swapped; its wall time."""
    [pipeline] = load_pipelines(box.folder)
    services = Services(
        box.kafka, box.flink, box.warehouse, log=lambda line: print(f"    {line}", flush=True)
    )
    owner = owner_id(f"bench-{label}")
    started = time.monotonic()
    report = prepare_candidate(pipeline, services, Claimant(owner))
    if not report.passed:
        raise SystemExit(f"{label}: the gate failed: {[o.summary for o in report.outcomes if not o.passed]}")
    swap(pipeline, services, SwapRequest(owner=owner))  # the run's swap step: it takes over the claim
    return time.monotonic() - started


def read_by(box: Sandbox, version: int) -> int:
    with box.warehouse.connect() as conn:
        counted = conn.execute(
            text("SELECT coalesce(sum(records), 0) FROM kappa_counts.input_counts WHERE version = :v"),
            {"v": version},
        ).scalar()
    return int(counted or 0)


def edit(box: Sandbox, sql: tuple[str, str], column: tuple[str, str] | None = None) -> None:
    sql_file = box.folder / "daily_spend.sql"
    sql_file.write_text(sql_file.read_text().replace(*sql))
    if column is not None:
        spec_file = box.folder / "daily_spend.yaml"
        raw = yaml.safe_load(spec_file.read_text())
        for c in raw["target"]["columns"]:
            c["name"] = column[1] if c["name"] == column[0] else c["name"]
        for check in raw.get("checks") or []:
            kwargs = check.get("kwargs") or {}
            kwargs["column"] = column[1] if kwargs.get("column") == column[0] else kwargs.get("column")
        spec_file.write_text(yaml.safe_dump(raw, sort_keys=False))


def run(box: Sandbox, events_count: int) -> None:
    for name in ("daily_spend.yaml", "daily_spend.sql"):
        content = (ROOT / "assets" / name).read_text().replace("payments.authorizations", box.topic)
        (box.folder / name).write_text(content)
    print(f"producing {events_count:,} events to {box.topic} ...", flush=True)
    for batch in range(0, events_count, 200_000):
        events = sample_events(min(200_000, events_count - batch), seed=batch + 1, id_prefix=f"b{batch}")
        box.kafka.produce(box.topic, events.authorizations, key=lambda e: e["account"])  # type: ignore[index]
    print("v1: the live version replays the log", flush=True)
    first_s = reprocess(box, "v1")
    print("v2: a renamed column (state-compatible: a cheap start from v1's savepoint)", flush=True)
    edit(box, ("AS spend_cents", "AS total_cents"), ("spend_cents", "total_cents"))
    cheap_s = reprocess(box, "v2")
    print("v3: a filter before the aggregate (breaking: a full replay)", flush=True)
    edit(box, ("WHERE status = 'approved'", "WHERE status = 'approved' AND amount_cents > 0"))
    replay_s = reprocess(box, "v3")
    with registry.session(box.warehouse) as conn:
        v2 = next(r for r in registry.pipeline_versions(conn, "daily_spend") if r.version == 2)
    started = (v2.definition or {}).get("cheap_start") or {}
    print()
    print(f"events in the log            {events_count:,}")
    print(f"v1 replay                    {first_s:6.1f} s, read {read_by(box, 1):,} records")
    print(
        f"v2 cheap start ({started.get('kind', 'none')})  {cheap_s:6.1f} s, read {read_by(box, 2):,} records"
    )
    print(f"v3 replay (breaking)         {replay_s:6.1f} s, read {read_by(box, 3):,} records")
    print(f"ratio (cheap / replay)       {cheap_s / replay_s:.2f}")


if __name__ == "__main__":
    main()
