"""A background reprocess keeps every option of the foreground one, through the
environment (found: `--flink-checkpoint-dir None` was passed as text, and the warehouse
URL with its password showed in `ps`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kappa_orch.cli.operate import reprocess_command
from kappa_orch.cli.options import background_environment


def test_every_option_travels_as_the_variable_it_is_read_from() -> None:
    options = {
        p.name: f"value-{p.name}"
        for p in reprocess_command.params
        if getattr(p, "envvar", None) and p.name is not None
    }
    environment = background_environment(options)
    by_option = {p.name: p.envvar for p in reprocess_command.params if getattr(p, "envvar", None)}
    assert set(by_option) >= {"specs", "warehouse_url", "sql_gateway_url"}
    for name, envvar in by_option.items():
        assert environment[str(envvar)] == f"value-{name}"


def test_an_unset_option_stays_unset() -> None:
    environment = background_environment({"warehouse_reader_url": None, "specs": Path("assets")})
    assert environment == {"KAPPA_SPECS": "assets"}


def test_cli_runs_are_recorded_where_the_ui_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # found: `reprocess --wait` used an ephemeral Dagster instance unless DAGSTER_HOME was set
    from kappa_orch.cli.operate import dagster_home

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    home = dagster_home(tmp_path / ".kappa")
    assert home == (tmp_path / ".kappa" / "dagster").resolve()
    assert "telemetry" in (home / "dagster.yaml").read_text()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "elsewhere"))
    assert dagster_home(tmp_path / ".kappa") == (tmp_path / "elsewhere").resolve()
