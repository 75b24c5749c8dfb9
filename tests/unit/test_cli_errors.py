"""Expected failures are one message (what, where the fault lies, the fix), never a
traceback; `--debug` shows the traceback. Found: the CLI printed Dagster's and Python's
tracebacks for an unreachable service and a failed gate, and advised "fix the spec" for
an infrastructure failure.

The services here are ports nobody listens on: refused connections, no server needed."""

from __future__ import annotations

import socket
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from kappa_orch.cli import KappaGroup, main
from tests.unit.specs import ASSETS, BASE, write


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def nowhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every service the CLI talks to is a closed port."""
    monkeypatch.setenv("KAPPA_SPECS", str(ASSETS))
    monkeypatch.setenv("KAPPA_KAFKA_BOOTSTRAP", f"127.0.0.1:{_free_port()}")
    monkeypatch.setenv("KAPPA_FLINK_REST_URL", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.setenv("KAPPA_SQL_GATEWAY_URL", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.setenv(
        "KAPPA_WAREHOUSE_URL", f"postgresql+psycopg2://kappa:secret@127.0.0.1:{_free_port()}/warehouse"
    )
    monkeypatch.delenv("KAPPA_DEBUG", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)


def test_an_unreachable_warehouse_is_an_infrastructure_message(nowhere: None) -> None:
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "error (infrastructure): " in result.output and "fix: " in result.output
    assert "secret" not in result.output  # the password never shows


def test_a_reprocess_whose_services_are_down_names_the_service_not_the_spec(nowhere: None) -> None:
    result = CliRunner().invoke(main, ["reprocess", "daily_spend", "--wait"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "Stack Trace" not in result.output
    assert "error (infrastructure): " in result.output
    assert "fix the spec" not in result.output


def test_a_spec_problem_is_labelled_as_one(tmp_path: Path, nowhere: None) -> None:
    broken = dict(BASE, target=dict(BASE["target"], alias="kappa_registry.versions"))
    write(tmp_path, broken)
    result = CliRunner().invoke(main, ["status", "--specs", str(tmp_path)])
    assert result.exit_code == 1
    assert "error (spec): " in result.output and "target.alias" in result.output
    assert "Traceback" not in result.output


def test_plan_takes_pipeline_names_and_a_wrong_one_is_named(nowhere: None) -> None:
    result = CliRunner().invoke(main, ["plan", "daily_spend", "nope"])
    assert result.exit_code == 1, result.output
    assert "no pipeline named 'nope'" in result.output and "choose one of: account_latest" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(main, ["plan", "daily_spend"])  # the name is taken; the registry is down
    assert result.exit_code == 1 and "error (infrastructure): " in result.output, result.output


def test_debug_shows_the_traceback(nowhere: None) -> None:
    result = CliRunner().invoke(main, ["--debug", "status"])
    assert result.exit_code == 1
    assert "Traceback" in result.output and "error (infrastructure): " in result.output


def test_an_unexpected_error_is_called_a_bug_and_points_at_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAPPA_DEBUG", raising=False)

    @click.group(cls=KappaGroup)
    def group() -> None:
        pass

    @group.command()
    def boom() -> None:
        raise RuntimeError("something nobody expected")

    result = CliRunner().invoke(group, ["boom"])
    assert result.exit_code == 2
    assert "internal error: RuntimeError: something nobody expected" in result.output
    assert "rerun with --debug" in result.output and "Traceback" not in result.output
