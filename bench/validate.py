"""`kappa-orch validate` at 10 and 100 specs: wall time of the command as a user runs it
(a fresh process each time), with Flink's planner (one local JVM for the whole folder)
and, as the baseline measured in the same run, without it (`--no-flink`: the spec
model, sqlglot and the Great Expectations checks only).

The specs are copies of the reference pipelines, renamed (name, alias, batch table).

    .venv/bin/python bench/validate.py [--sizes 10 100] [--repeat 3]

Needs no server.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
KAPPA = str(Path(sys.executable).parent / "kappa-orch")


def specs_folder(count: int) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=f"kappa-validate-{count}-"))
    references = sorted(ASSETS.glob("*.yaml"))
    for i in range(count):
        path = references[i % len(references)]
        raw = yaml.safe_load(path.read_text())
        name = f"{raw['name']}_{i:03d}"
        schema, table = raw["target"]["alias"].split(".")
        raw["name"] = name
        raw["target"]["alias"] = f"{schema}.{table}_{i:03d}"
        raw["sql"] = f"{name}.sql"
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        shutil.copy(ASSETS / yaml.safe_load(path.read_text())["sql"], folder / f"{name}.sql")
    return folder


def run(folder: Path, flink: bool) -> float:
    """Seconds the command took."""
    started = time.monotonic()
    done = subprocess.run(
        [KAPPA, "validate", "--specs", str(folder), "--flink" if flink else "--no-flink"],
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"validate failed:\n{done.stdout}{done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'specs':>5}  {'--no-flink (baseline)':>22}  {'--flink':>10}  {'ratio':>6}  per spec with Flink")
    for size in args.sizes:
        folder = specs_folder(size)
        try:
            plain = statistics.median(run(folder, flink=False) for _ in range(args.repeat))
            planned = statistics.median(run(folder, flink=True) for _ in range(args.repeat))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        print(
            f"{size:>5}  {plain:>21.1f}s  {planned:>9.1f}s  {planned / plain:>5.1f}x  "
            f"{planned / size * 1000:>6.0f} ms",
            flush=True,
        )


if __name__ == "__main__":
    main()
