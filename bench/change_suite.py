"""The proof of issue 26: canonical edits (bench/change_edits.py) on five pipeline shapes,
each applied to a live version the way `plan --apply` applies it, and the served alias
then compared row by row with a full replay of the edited spec.

Per shape, on its own topics and database (bench/sandbox.py), with a realistic log
(tests/integration/scale.py: days of events over three skewed partitions, broken and
wrong-clock events mixed in):

1. the first half of the log is produced; every edit gets its own copy of the base
   pipeline, whose v1 replays it and goes live;
2. each edit is classified (lifecycle.change, what `kappa-orch plan` prints) and applied
   through the reprocess path (`prepare_candidate`, then the swap; a change that waits
   for approval is approved by its plan id, as `plan --apply --approve` does); the time,
   the records the new version's own job read and the estimate are recorded;
3. the second half is produced; a scratch copy of each edited spec replays the whole log;
   the edit's alias must equal it row for row (EXCEPT ALL both ways), else the edit is
   `silent-wrong`;
4. guard: each edit marked `guard` is run once more the way Flink alone would do it: the
   base job with Flink's automatic operator ids, stopped with a savepoint, its rows copied,
   and the edited job restored from that savepoint (strictly); its table compared with the
   same full replay shows what kappa_orch's compiled plans keep from happening.

Outcomes: exact-cheap (no replay, equal), exact-replay (a full replay, equal), caught (a
cheap start its verification refused and replayed, equal), gate-failed (not swapped),
silent-wrong (swapped, unequal). It prints one row per edit and the totals, and exits 1
on any silent-wrong.

    .venv/bin/python bench/change_suite.py [--events 200000] [--shapes daily_spend,...] [--only ds03,...]

Needs the local stack (`kappa-orch stack up`), about 40 minutes for all shapes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from change_edits import EDITS, SHAPES, Edit  # noqa: E402
from sandbox import Sandbox, sandbox  # noqa: E402
from sqlalchemy import text  # noqa: E402
from suite_guard import Guard, guard_start, guard_verdict  # noqa: E402

from kappa_orch.errors import AwaitingApproval  # noqa: E402
from kappa_orch.lifecycle.change import change_of, records_held  # noqa: E402
from kappa_orch.lifecycle.reprocess import Acceptance, prepare_candidate  # noqa: E402
from kappa_orch.lifecycle.services import Services  # noqa: E402
from kappa_orch.lifecycle.swap import SwapRequest, retire, swap  # noqa: E402
from kappa_orch.registry import approvals  # noqa: E402
from kappa_orch.registry import store as registry  # noqa: E402
from kappa_orch.registry.claims import Claimant, owner_id  # noqa: E402
from kappa_orch.spec.load import load_pipeline  # noqa: E402
from kappa_orch.spec.model import LoadedPipeline  # noqa: E402
from tests.integration import scale  # noqa: E402
from tests.integration.at_scale import produce_records  # noqa: E402

BASES = {
    "daily_spend": ROOT / "assets",
    "merchant_risk": ROOT / "assets",
    "account_latest": ROOT / "assets",
    "auth_settlement": ROOT / "assets",
    "auth_copy": ROOT / "bench" / "specs",
}
COMPARE_WAIT_S = 180.0
# edits run beside each other on one sandbox (a live version each): the join keeps both
# sides in its state, and the local stack's TaskManager (3 GB) ran out of heap with seven
# such jobs and a replay beside them
PER_SANDBOX = {"auth_settlement": 2}
# an edit changes the rows on purpose: its parity with the live version is accepted, as
# an operator would (`--accept parity_with_live --reason ...`); every structural check,
# derive_parity included, still gates it, and the full replay is the judge
ACCEPTED = Acceptance(("parity_with_live",), "the edit changes the rows on purpose", by="change-suite")


@dataclass
class Result:
    edit: Edit
    kind: str = "?"
    applied: str = "?"
    held: int = 0  # records in the log when the edit was applied
    estimate_events: int | None = None
    estimate_s: float | None = None
    read: int = 0  # records the new version's own job read by its gate
    seconds: float = 0.0
    asked: bool = False
    passed: bool = True
    fell_back: str | None = None
    differences: int | None = None
    outcome: str = "?"
    guard: str = ""
    notes: list[str] = field(default_factory=list)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--only", default="", help="edit keys, comma-separated (default: all)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    only = {k for k in args.only.split(",") if k}
    log = scale.scale_log(args.events, seed=26)
    results: list[Result] = []
    for shape in args.shapes.split(","):
        edits = [e for e in EDITS if e.shape == shape and (not only or e.key in only)]
        size = PER_SANDBOX.get(shape, len(edits)) or 1
        for at in range(0, len(edits), size):
            with sandbox() as box:
                run_shape(box, shape, edits[at : at + size], log, results, args.json)
    report(results)
    if any(r.outcome == "silent-wrong" for r in results):
        raise SystemExit(
            "silent-wrong: " + ", ".join(r.edit.key for r in results if r.outcome == "silent-wrong")
        )
    guarded = [r for r in results if r.edit.guard]
    if guarded and not any(r.guard == "silent-wrong" for r in guarded):
        raise SystemExit(
            "the guard is no longer meaningful: no stateful edit went wrong with Flink's own ids"
        )


# what the reprocess says that the table needs: the path it took, and why not a cheaper one
TELLING = ("replays the log", "no cheap start", "rows derived", "starts from", "could not be")


def _telling(line: str) -> None:
    if any(part in line for part in TELLING):
        say(f"  {line}")


def say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def run_shape(
    box: Sandbox, shape: str, edits: list[Edit], log: scale.ScaleLog, done: list[Result], out: Path | None
) -> None:
    """The shape's edits (see the module's docstring); each result is added to `done` (and
    `out` rewritten) as soon as it is judged."""
    settlements = f"{box.topic.rsplit('.', 1)[0]}.settlements"
    box.kafka.create_topic(settlements, partitions=scale.PARTITIONS, config={"retention.ms": "-1"})
    topics = {"payments.authorizations": box.topic, "payments.settlements": settlements}
    services = Services(box.kafka, box.flink, box.warehouse, log=_telling)
    try:
        say(f"{shape}: the first half of {log.auth_log.total:,} records")
        produce_half(box, log, topics, 0)
        copies = {e.key: write_copy(box.folder / e.key, shape, f"{shape}_{e.key}", topics) for e in edits}
        go_live(list(copies.values()), services)
        results, guards = [], {}
        started_guards: list[str] = []
        for e in edits:
            if e.guard:
                base = apply_edit(box.folder / f"{e.key}_gb", copies[e.key], Edit(shape, "", ""), "_gb")
                guards[e.key] = guard_start(
                    services, base, apply_edit(box.folder / f"{e.key}_g", copies[e.key], e, "_g")
                )
                started_guards += [guards[e.key].job_id] if guards[e.key].job_id else []
            results.append(apply(e, apply_edit(box.folder / e.key, copies[e.key], e), services))
        say(f"{shape}: the second half")
        produce_half(box, log, topics, 1)
        for r in results:
            verdict(r, box, services, guards.get(r.edit.key))
            done.append(r)
            if out is not None:
                out.write_text(json.dumps([row(d) for d in done], indent=2))
    finally:
        stop_jobs(box, services, started_guards)
        box.kafka.delete_topic(settlements)


def produce_half(box: Sandbox, log: scale.ScaleLog, topics: dict[str, str], half: int) -> None:
    for topic, partitioned in (
        (topics["payments.authorizations"], log.auth_log),
        (topics["payments.settlements"], log.settlement_log),
    ):
        for partition, records in partitioned.records.items():
            middle = len(records) // 2
            produce_records(box.kafka, topic, partition, records[:middle] if half == 0 else records[middle:])


def write_copy(folder: Path, shape: str, name: str, topics: dict[str, str]) -> LoadedPipeline:
    """A copy of the base pipeline named `name`, reading the sandbox's topics."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = yaml.safe_load((BASES[shape] / f"{shape}.yaml").read_text())
    raw["name"] = name
    raw["target"]["alias"] = f"{raw['target']['alias'].split('.')[0]}.{name}"
    raw.pop("batch", None)
    raw["catch_up"] = {"max_lag": 0, "stable_for": "2s"}
    if shape == "merchant_risk":
        raw["allowed_lateness"] = "10m"
    for source in raw["sources"]:
        source["topic"] = topics[source["topic"]]
    (folder / raw["sql"]).write_text((BASES[shape] / raw["sql"]).read_text())
    (folder / f"{shape}.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_pipeline(folder / f"{shape}.yaml")


def apply_edit(folder: Path, base: LoadedPipeline, edit: Edit, suffix: str = "") -> LoadedPipeline:
    """The edited spec in `folder` (its name gets `suffix`)."""
    folder.mkdir(parents=True, exist_ok=True)
    source = Path(base.path)
    raw = yaml.safe_load(source.read_text())
    raw["name"] += suffix
    raw["target"]["alias"] += suffix
    sql = (source.parent / raw["sql"]).read_text()
    for old, new in edit.sql:
        if sql.count(old) != 1:
            raise SystemExit(f"{edit.key}: {old!r} occurs {sql.count(old)} times in {raw['sql']}")
        sql = sql.replace(old, new)
    if edit.spec is not None:
        edit.spec(raw)
    (folder / raw["sql"]).write_text(sql)
    (folder / source.name).write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_pipeline(folder / source.name)


def go_live(pipelines: list[LoadedPipeline], services: Services) -> None:
    """Every copy's v1 replays the first half and goes live."""
    started = time.monotonic()
    for pipeline in pipelines:
        owner = owner_id(f"suite-{pipeline.name}")
        report = prepare_candidate(pipeline, services, Claimant(owner))
        if not report.passed:
            raise SystemExit(
                f"{pipeline.name}: v1's gate failed: {[o.summary for o in report.outcomes if not o.passed]}"
            )
        swap(pipeline, services, SwapRequest(owner=owner))
    say(f"{len(pipelines)} copies live in {time.monotonic() - started:.0f} s")


def live_row(services: Services, name: str) -> registry.VersionRow:
    with registry.session(services.warehouse) as conn:
        version = registry.live_versions(conn)[name]
        return next(r for r in registry.pipeline_versions(conn, name) if r.version == version)


def apply(edit: Edit, pipeline: LoadedPipeline, services: Services) -> Result:
    """Classify the edit (as `plan` does), then apply it (as `plan --apply` does)."""
    result, name = Result(edit), pipeline.name
    live = live_row(services, name)
    result.held = records_held(services.kafka, pipeline) or 0
    change = change_of(pipeline, live, services, result.held)
    result.kind, result.applied = change.kind, change.applied
    result.estimate_events, result.estimate_s = change.events_to_read, change.estimate_s
    started = time.monotonic()
    if pipeline.fingerprint != live.fingerprint:
        owner = owner_id(f"suite-{name}")
        try:
            report = prepare_candidate(pipeline, services, Claimant(owner), acceptance=ACCEPTED)
        except AwaitingApproval:
            result.asked = True
            with registry.session(services.warehouse) as conn:
                [waiting] = [a for a in approvals.requests(conn, pipeline=name) if a.approved_at is None]
                approvals.approve(conn, waiting.plan_id, "change-suite")
            report = prepare_candidate(pipeline, services, Claimant(owner), acceptance=ACCEPTED)
        result.passed = report.passed
        version = report.version.version
        result.read = own_reads(services, name, version)
        started_cheaply = (report.version.definition or {}).get("cheap_start") or {}
        result.fell_back = started_cheaply.get("fell_back")
        if change.applied == "savepoint" and not started_cheaply:
            # the plan chose a cheap start, the reprocess refused it before the fence
            result.applied = "replay"
            result.notes.append("a cheap start was refused before the fence: replayed")
        if report.passed:
            swap(pipeline, services, SwapRequest(owner=owner))
            retire(pipeline, live.version, services, owner=owner)
        else:
            result.notes.append("; ".join(o.summary for o in report.outcomes if not o.passed))
    result.seconds = time.monotonic() - started
    say(
        f"{edit.key} {edit.label}: {result.kind} ({result.applied}) in {result.seconds:.0f} s, "
        f"read {result.read:,} (estimated {result.estimate_events}, {result.estimate_s} s)"
    )
    return result


def own_reads(services: Services, name: str, version: int) -> int:
    with services.warehouse.connect() as conn:
        counted = conn.execute(
            text(
                "SELECT coalesce(sum(records), 0) FROM kappa_counts.input_counts "
                "WHERE pipeline = :p AND version = :v"
            ),
            {"p": name, "v": version},
        ).scalar()
    return int(counted or 0)


def verdict(result: Result, box: Sandbox, services: Services, guard: Guard | None) -> None:
    """Replay the edited spec in full into a scratch copy and compare the alias with it."""
    edited = load_pipeline(box.folder / result.edit.key / f"{result.edit.shape}.yaml")
    scratch = apply_edit(box.folder / f"{result.edit.key}_r", edited, Edit(result.edit.shape, "", ""), "_r")
    report = prepare_candidate(scratch, services, Claimant(owner_id(f"suite-{scratch.name}")))
    replayed = (
        f"{scratch.spec.target.schema_name}.{scratch.spec.target.version_table(report.version.version)}"
    )
    columns = ", ".join(f'"{c.name}"' for c in edited.spec.target.columns)
    result.differences = differences(services, columns, edited.spec.target.alias, replayed)
    if not result.passed:
        result.outcome = "gate-failed"
    elif result.differences:
        result.outcome = "silent-wrong"
    elif result.fell_back:
        result.outcome = "caught"
    else:
        result.outcome = "exact-replay" if result.applied == "replay" else "exact-cheap"
    if guard is not None:
        result.guard = guard_verdict(
            guard, services, lambda table: differences(services, columns, table, replayed, 20.0)
        )
    # judged: its jobs go (a TaskManager of the local stack holds a shape's jobs, not all)
    for name in (scratch.name, edited.name):
        stop_jobs(box, services, names={name})
    say(
        f"{result.edit.key}: {result.outcome} ({result.differences} rows differ)"
        + (f", guard: {result.guard}" if result.guard else "")
    )


def differences(
    services: Services, columns: str, served: str, replayed: str, wait_s: float = COMPARE_WAIT_S
) -> int:
    """Rows in one and not the other (EXCEPT ALL both ways), once both have settled."""
    query = text(
        f"SELECT (SELECT count(*) FROM (SELECT {columns} FROM {served} "
        f"EXCEPT ALL SELECT {columns} FROM {replayed}) a) + (SELECT count(*) FROM "
        f"(SELECT {columns} FROM {replayed} EXCEPT ALL SELECT {columns} FROM {served}) b)"
    )
    deadline = time.monotonic() + wait_s
    while True:
        with services.warehouse.connect() as conn:
            found = int(conn.execute(query).scalar() or 0)
        if found == 0 or time.monotonic() > deadline:
            return found
        time.sleep(5)


def stop_jobs(
    box: Sandbox, services: Services, others: list[str] | None = None, names: set[str] | None = None
) -> None:
    """Cancel the jobs of the registry's versions (of the pipelines `names`, else all) and
    `others` (the sandbox then drops its database)."""
    with registry.session(box.warehouse) as conn:
        rows = registry.all_versions(conn)
    jobs = [r.flink_job_id for r in rows if r.flink_job_id and (names is None or r.pipeline in names)]
    jobs += others or []
    for job in jobs:
        with contextlib.suppress(Exception):  # a job that ended already
            services.engine.cancel(job, wait=False)


def row(r: Result) -> dict[str, Any]:
    replays = r.applied == "replay"
    return {
        "edit": r.edit.key,
        "shape": SHAPES[r.edit.shape],
        "label": r.edit.label,
        "class": r.kind,
        "applied": r.applied,
        "outcome": r.outcome,
        "events_ratio": round(r.read / r.held, 3) if r.held else None,
        "seconds": round(r.seconds, 1),
        "estimate_events": r.estimate_events,
        "read": r.read,
        "estimate_error": None
        if r.estimate_events is None
        else round((r.read - r.estimate_events) / max(r.estimate_events, r.held // 100, 1), 3),
        "estimate_s": r.estimate_s,
        "approval": {"asked": r.asked, "expected": r.edit.drops},
        "replayed": replays,
        "guard": r.guard,
        "notes": r.notes,
    }


def report(results: list[Result]) -> None:
    """One row per edit: its time against the median full replay of its shape's first half
    (the breaking edits' own replays, same run), the records its new version's job read
    against the log, and the estimates' errors (records, seconds)."""
    print()
    print(
        f"{'edit':<5} {'shape':<22} {'change':<36} {'class':<17} {'outcome':<13} {'time':>6} "
        f"{'t/replay':>8} {'read/log':>8} {'est.err':>7} {'t.err':>6} {'approval':<8} guard"
    )
    replay_s = {
        shape: statistics.median(
            [r.seconds for r in results if r.edit.shape == shape and r.applied == "replay" and r.passed]
            or [0.0]
        )
        for shape in {r.edit.shape for r in results}
    }
    for r in results:
        d = row(r)
        asked = ("asked" if r.asked else "-") + ("" if r.asked == r.edit.drops else "(!)")
        baseline = replay_s[r.edit.shape]
        ratio = f"{r.seconds / baseline:.2f}" if baseline else "-"
        err = "-" if d["estimate_error"] is None else f"{d['estimate_error']:+.0%}"
        t_err = f"{(r.seconds - r.estimate_s) / r.estimate_s:+.0%}" if r.estimate_s else "-"
        read = "-" if d["events_ratio"] is None else f"{d['events_ratio']:.2f}"
        print(
            f"{r.edit.key:<5} {SHAPES[r.edit.shape]:<22.22} {r.edit.label:<36.36} {r.kind:<17} "
            f"{r.outcome:<13} "
            f"{r.seconds:5.0f}s {ratio:>8} {read:>8} {err:>7} {t_err:>6} {asked:<8} {r.guard}"
        )
    cheaper = [r for r in results if r.applied != "replay" and r.outcome in ("exact-cheap",)]
    print()
    print(f"edits                     {len(results)}")
    for outcome in ("exact-cheap", "exact-replay", "caught", "gate-failed", "silent-wrong"):
        print(f"{outcome:<25} {sum(r.outcome == outcome for r in results)}")
    print(f"cheaper than a replay     {len(cheaper)} ({len(cheaper) / max(len(results), 1):.0%})")
    medians = ", ".join(f"{shape} {seconds:.0f} s" for shape, seconds in sorted(replay_s.items()))
    print(f"median replay per shape   {medians}")
    cheap_s = [r.seconds for r in cheaper if r.applied == "savepoint"]
    if cheap_s:
        print(f"median cheap start        {statistics.median(cheap_s):.0f} s")
    wrong = [r for r in results if r.guard]
    print(
        f"auto-id guard             {sum(r.guard == 'silent-wrong' for r in wrong)} of {len(wrong)} "
        "silently wrong with Flink's own ids"
    )
    bad = [r.edit.key for r in results if r.asked != r.edit.drops]
    print(f"approval as declared      {'yes' if not bad else 'no: ' + ', '.join(bad)}")


if __name__ == "__main__":
    main()
