"""Helpers of the unit tests that write specs: the reference daily_spend spec and SQL,
writing a spec (and its SQL) into a folder, mutating a copy, and the problems a load
reports. Shared here so that no test module imports another."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from kappa_orch.spec.load import SpecErrors, load_pipeline

ASSETS = Path(__file__).resolve().parents[2] / "assets"
BASE: dict[str, Any] = yaml.safe_load((ASSETS / "daily_spend.yaml").read_text())
SQL = (ASSETS / "daily_spend.sql").read_text()


def write(folder: Path, spec: dict[str, Any], *, name: str = "daily_spend", sql: str | None = SQL) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    if sql is not None:
        (folder / spec.get("sql", "daily_spend.sql")).write_text(sql)
    return path


def problems(path: Path) -> list[tuple[str, str, str | None]]:
    with pytest.raises(SpecErrors) as error:
        load_pipeline(path)
    return [(p.field, p.problem.split(": ", 2)[2], p.fix) for p in error.value.problems]


def mutated(change: Any) -> dict[str, Any]:
    spec = copy.deepcopy(BASE)
    change(spec)
    return spec
