"""Control-plane benchmark: how the Dagster side scales with the number of pipelines.

For N generated pipeline specs (default 10 and 1,000) it measures, in this process:
- load: reading and validating the specs, fingerprinting them, building the assets
  and the observation sensor, and resolving the Dagster asset graph;
- sensor decision: the pure part of one observation-sensor tick (which versions to
  watch, and their observations) over recorded Flink and Kafka answers.

Each figure is the median of --repeat runs, printed next to the 10-spec baseline
measured in the same run. Aims (issue #3): load < 5 s and decision < 2 s at 1,000.

    .venv/bin/python bench/control_plane.py [--sizes 10 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dagster import Definitions  # noqa: E402

from kappa_orch import pipeline_assets, stream_observation_sensor  # noqa: E402
from kappa_orch.dagster.answers import StreamAnswers  # noqa: E402
from kappa_orch.dagster.observe import observed_versions, stream_observations  # noqa: E402
from kappa_orch.engine.protocol import Checkpoint  # noqa: E402
from kappa_orch.registry import store as registry  # noqa: E402
from kappa_orch.spec.load import load_pipelines  # noqa: E402
from kappa_orch.spec.model import LoadedPipeline  # noqa: E402
from resources import build_resources  # noqa: E402

TEMPLATES = ("daily_spend", "merchant_risk", "auth_settlement")


def generate_specs(folder: Path, count: int) -> None:
    """count specs cloned from the reference ones, each with its own name, alias, SQL
    constant (so every fingerprint differs) and one of 50 topic families."""
    assets = ROOT / "assets"
    for i in range(count):
        template = TEMPLATES[i % len(TEMPLATES)]
        spec = (assets / f"{template}.yaml").read_text()
        sql = (assets / f"{template}.sql").read_text()
        name = f"{template}_{i:05d}"
        spec = re.sub(r"^name: .*$", f"name: {name}", spec, flags=re.M)
        spec = re.sub(r"alias: (\w+)\.\w+", rf"alias: \1.{name}", spec)
        spec = spec.replace(f"sql: {template}.sql", f"sql: {name}.sql")
        spec = spec.replace("topic: payments.", f"topic: family{i % 50}.payments.")
        sql = sql.replace("SELECT", f"SELECT /* {i} */", 1) + f"\n-- variant {i}\n"
        sql = sql.replace("COUNT(*)", f"COUNT(*) + {i} - {i}", 1)
        (folder / f"{name}.yaml").write_text(spec)
        (folder / f"{name}.sql").write_text(sql)


def load(folder: Path) -> tuple[list[LoadedPipeline], float]:
    started = time.perf_counter()
    pipelines = load_pipelines(folder)
    defs = Definitions(
        assets=pipeline_assets(pipelines),
        sensors=[stream_observation_sensor(pipelines)],
        resources=build_resources(),
    )
    defs.resolve_asset_graph()
    return pipelines, time.perf_counter() - started


def recorded_state(pipelines: list[LoadedPipeline]) -> tuple[list[registry.VersionRow], StreamAnswers]:
    rows, answers = [], StreamAnswers(observed_at_ms=1_000_000)
    for i, pipeline in enumerate(pipelines):
        job = f"job{i:05d}"
        for version, state in ((1, registry.LIVE), (2, registry.CATCHING_UP)):
            group = f"kappa.{pipeline.name}.v{version}"
            rows.append(
                registry.VersionRow(
                    pipeline.name,
                    version,
                    f"fp{version}",
                    f"t__v{version}",
                    state,
                    f"{job}-{version}",
                    group,
                    None,
                    None,
                )
            )
            answers.job_states[f"{job}-{version}"] = "RUNNING"
            answers.checkpoints[f"{job}-{version}"] = Checkpoint(9, 990_000, None)
            for source in pipeline.spec.sources:
                answers.lags[(group, source.topic)] = {0: 3, 1: 0, 2: 7}
    return rows, answers


def decide(pipelines: list[LoadedPipeline], rows: list[registry.VersionRow], answers: StreamAnswers) -> float:
    gc.collect()  # a collection left over from loading would land in this timing
    started = time.perf_counter()
    watched = observed_versions(pipelines, rows)
    observations = stream_observations(watched, answers, {p.name: 1 for p in pipelines})
    elapsed = time.perf_counter() - started
    assert len(observations) == len(pipelines)  # one per pipeline: its live and candidate versions
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    results: dict[int, tuple[float, float]] = {}
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            generate_specs(folder, size)
            loads, decisions = [], []
            for _ in range(args.repeat):
                pipelines, seconds = load(folder)
                loads.append(seconds)
                rows, answers = recorded_state(pipelines)
                decisions.append(decide(pipelines, rows, answers))
            results[size] = (statistics.median(loads), statistics.median(decisions))
        print(
            f"  {size:>5} specs: load {results[size][0]:7.3f} s   sensor decision {results[size][1]:7.4f} s",
            flush=True,
        )

    base = min(results)
    print(f"\ncontrol plane (median of {args.repeat}; ratio against {base} specs in this run)")
    print(f"{'specs':>7} {'load s':>9} {'x base':>8} {'per spec ms':>12} {'decision s':>11} {'x base':>8}")
    for size, (load_s, decide_s) in sorted(results.items()):
        print(
            f"{size:>7} {load_s:>9.3f} {load_s / results[base][0]:>8.1f} {1000 * load_s / size:>12.2f} "
            f"{decide_s:>11.4f} {decide_s / results[base][1]:>8.1f}"
        )
    largest = max(results)
    load_s, decide_s = results[largest]
    load_verdict = "met" if load_s < 5 else "NOT met"
    decide_verdict = "met" if decide_s < 2 else "NOT met"
    print(
        f"\naim at 1,000 specs: load < 5 s, decision < 2 s; at {largest}: load {load_s:.2f} s "
        f"({load_verdict}), decision {decide_s:.3f} s ({decide_verdict})"
    )


if __name__ == "__main__":
    main()
