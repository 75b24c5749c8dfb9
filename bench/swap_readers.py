"""Readers through swaps: 50 readers query an alias while it is swapped 20 times between
two versions, against the same readers without swaps, in the same run. Phases:

- view over one version: readers of a plain view (the alias outside a reprocess's
  grace period), for the cost of the guarded view below;
- without swaps: the baseline, readers of the view over two members;
- with swaps: kappa_orch's swap between two members of the alias view (an update of
  the registry's live version, no DDL);
- swaps rebuilding the view: the swap before members (DROP + CREATE VIEW per swap, with
  the 50 ms lock timeout and retries);
- swaps rebuilding the view, waiting for the lock: the swap before lock timeouts (a
  DDL waiting for its lock queues every new reader behind it).

Each reader runs `SELECT count(*), sum(...) FROM <alias>` in a loop on its own
connection and records each query's latency. A phase lasts until its swaps are done
(or `--quiet-s` without swaps). Reported: p50 and p99 per phase, and the ratio of the
p99 with swaps to the p99 without (aim <= 1.5), plus errors and mixed results.

    .venv/bin/python bench/swap_readers.py [--readers 50] [--swaps 20] [--rows 200000]

Needs the local stack's PostgreSQL (`kappa-orch stack up`); uses a database of its own.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox import sandbox  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from kappa_orch.lifecycle import swap as swap_step  # noqa: E402
from kappa_orch.lifecycle.deploy import version_definition  # noqa: E402
from kappa_orch.lifecycle.services import Services  # noqa: E402
from kappa_orch.lifecycle.swap import SwapRequest, swap, with_short_locks  # noqa: E402
from kappa_orch.plan.decide import group_id_for  # noqa: E402
from kappa_orch.registry import store as registry  # noqa: E402
from kappa_orch.registry import transitions  # noqa: E402
from kappa_orch.registry.serving import build_alias, create_version_table  # noqa: E402
from kappa_orch.spec.fingerprint import fingerprint  # noqa: E402
from kappa_orch.spec.load import load_pipelines  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def phase(url: str, alias: str, readers: int, swaps: int, run_swaps: Callable[[int], None]) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    answers: set[int] = set()
    lock = threading.Lock()
    stop = threading.Event()
    engine = create_engine(url, pool_size=readers + 2)

    def reader() -> None:
        with engine.connect() as conn:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    count, _ = conn.execute(text(f"SELECT count(*), sum(spend_cents) FROM {alias}")).one()
                    conn.commit()
                except Exception as exc:  # a reader must never see one: counted, not raised
                    errors.append(str(exc).splitlines()[0])
                    conn.rollback()
                    continue
                with lock:
                    latencies.append(time.perf_counter() - started)
                    answers.add(int(count))

    threads = [threading.Thread(target=reader) for _ in range(readers)]
    for t in threads:
        t.start()
    time.sleep(2)  # every reader connected and running
    with lock:
        latencies.clear()
    started = time.monotonic()
    run_swaps(swaps)
    elapsed = time.monotonic() - started
    stop.set()
    for t in threads:
        t.join()
    engine.dispose()
    return {
        "queries": len(latencies),
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000,
        "errors": len(errors),
        "answers": sorted(answers),
        "seconds": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--quiet-s", type=float, default=12.0)
    args = parser.parse_args()
    [pipeline] = [p for p in load_pipelines(ROOT / "assets") if p.name == "daily_spend"]
    spec = pipeline.spec
    with sandbox() as box:
        warehouse = box.warehouse
        with warehouse.begin() as conn:
            registry.migrate(conn)
            for version, rows in ((1, args.rows), (2, args.rows + 1)):  # the answer tells the version
                table = spec.target.version_table(version)
                create_version_table(conn, spec, table)
                conn.execute(
                    text(
                        f"INSERT INTO analytics.{table} (account, spend_day, authorizations, spend_cents) "
                        "SELECT 'acct-' || i, DATE '2026-01-01' + (i % 300), 1, i "
                        "FROM generate_series(1, :n) AS i"
                    ),
                    {"n": rows},
                )
                new = registry.NewVersion(
                    spec.name,
                    version,
                    fingerprint(pipeline) if version == 2 else "bench-v1",
                    table,
                    group_id_for(spec.name, version),
                    version_definition(pipeline),
                )
                registry.add_version(conn, new)
                # the way a version gets there: catching up, caught up, then gated (found: a
                # deploying version marked ready at once, which the state machine refuses)
                transitions.mark_catching_up(conn, spec.name, version)
                transitions.mark_caught_up(conn, spec.name, version, definition=new.definition)
                transitions.mark_gated(conn, spec.name, version, transitions.GateVerdict({}, None, None))
        services = Services(box.kafka, box.flink, warehouse)
        swap(pipeline, services, SwapRequest(to_version=1, reason="bench"))

        def swaps(n: int) -> None:
            if n == 0:
                time.sleep(args.quiet_s)
                return
            for i in range(n):
                swap(pipeline, services, SwapRequest(to_version=2 if i % 2 == 0 else 1, reason="bench"))
                time.sleep(0.4)

        def ddl_swaps(n: int) -> None:
            # the swap before members: the view rebuilt over the target alone, every time
            for i in range(n):
                version = 2 if i % 2 == 0 else 1

                def attempt(lock_timeout_ms: int, version: int = version) -> None:
                    with warehouse.begin() as conn:
                        build_alias(
                            conn, spec, [spec.target.version_table(version)], lock_timeout_ms=lock_timeout_ms
                        )
                        transitions.mark_live(
                            conn, pipeline=spec.name, alias=spec.target.alias, version=version
                        )

                with_short_locks(attempt)
                time.sleep(0.4)

        url = warehouse.url
        alias = spec.target.alias

        def one_member() -> None:
            with warehouse.begin() as conn:
                build_alias(conn, spec, [spec.target.version_table(1)])

        def both_members() -> None:
            with warehouse.begin() as conn:
                build_alias(conn, spec, [spec.target.version_table(v) for v in (1, 2)])

        one_member()
        results = {"view over one version": phase(url, alias, args.readers, 0, swaps)}
        both_members()
        results |= {
            "without swaps": phase(url, alias, args.readers, 0, swaps),
            "with swaps": phase(url, alias, args.readers, args.swaps, swaps),
            "swaps rebuilding the view": phase(url, alias, args.readers, args.swaps, ddl_swaps),
        }
        patience = swap_step.SWAP_PATIENCE_S
        swap_step.SWAP_PATIENCE_S = 0  # every attempt waits for the lock: the swap before timeouts
        try:
            results["rebuilding, waiting for lock"] = phase(url, alias, args.readers, args.swaps, ddl_swaps)
        finally:
            swap_step.SWAP_PATIENCE_S = patience
    base = results["without swaps"]["p99_ms"]  # the same view, without swaps
    print(f"\n{args.readers} readers, {args.swaps} swaps per phase, alias over {args.rows:,} rows\n")
    print(
        f"{'phase':<30}{'queries':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'p99/base':>10}{'errors':>8}  answers"
    )
    for name, r in results.items():
        print(
            f"{name:<30}{r['queries']:>9,}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['max_ms']:>9.1f}"
            f"{r['p99_ms'] / base:>10.2f}{r['errors']:>8}  {r['answers']}"
        )
    print("\naim: p99 with swaps <= 1.5 x p99 without; no errors; every answer one version's")


if __name__ == "__main__":
    main()
