"""`validate` plans every SELECT with Flink's own planner (a local JVM, no cluster):
what Flink refuses is refused with file, field and Flink's line; window table functions
are a supported way to write windows, in streaming and batch mode, with lineage."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kappa_orch.engine.flink.planner import FlinkPlanner
from kappa_orch.spec.load import load_pipeline, load_pipelines
from kappa_orch.spec.sql import column_lineage
from tests.unit.specs import ASSETS, BASE, SQL, write

pytestmark = pytest.mark.slow  # starts a JVM or subprocesses: left out of the fast lane

HOURLY = """-- spend per account and hour, as a window table function
SELECT
  account,
  CAST(window_start AS DATE) AS spend_day,
  COUNT(*) AS authorizations,
  SUM(amount_cents) AS spend_cents
FROM TABLE(TUMBLE(TABLE authorizations, DESCRIPTOR(event_time), INTERVAL '1' DAY))
WHERE status = 'approved'
GROUP BY account, window_start, window_end
"""


@pytest.fixture(scope="module")
def planner() -> Iterator[FlinkPlanner]:
    yield FlinkPlanner()


def planned(planner: FlinkPlanner, folder: Path, spec: dict[str, Any], sql: str) -> list[tuple[str, str]]:
    pipeline = load_pipeline(write(folder, spec, sql=sql))
    return [(p.field, p.problem.split(": ", 2)[2]) for p in planner.problems(pipeline)]


def test_the_reference_pipelines_plan(planner: FlinkPlanner) -> None:
    assert [p for pipeline in load_pipelines(ASSETS) for p in planner.problems(pipeline)] == []


def test_an_unknown_column_is_flinks_error_with_the_sql_files_line(
    planner: FlinkPlanner, tmp_path: Path
) -> None:
    found = planned(planner, tmp_path, BASE, SQL.replace("WHERE status", "WHERE statuss"))
    [(field, problem)] = found
    line = next(i for i, text in enumerate(SQL.splitlines(), 1) if "WHERE status" in text)
    assert field == "sql"
    assert problem.startswith("daily_spend.sql: Flink refuses the SELECT: ")
    assert f"From line {line}, column 7" in problem and "Column 'statuss' not found" in problem


def test_a_target_type_the_select_cannot_fill_is_refused(planner: FlinkPlanner, tmp_path: Path) -> None:
    spec = copy.deepcopy(BASE)
    spec["target"]["columns"][3]["type"] = "BOOLEAN"  # spend_cents is a BIGINT sum
    [(field, problem)] = planned(planner, tmp_path, spec, SQL)
    assert field == "sql" and "spend_cents" in problem and "BOOLEAN" in problem, problem


def test_a_plan_flink_cannot_run_in_streaming_mode_is_refused(planner: FlinkPlanner, tmp_path: Path) -> None:
    spec = copy.deepcopy(BASE)
    spec.pop("batch")
    sorted_sql = SQL.rstrip() + "\nORDER BY spend_cents\n"
    [(field, problem)] = planned(planner, tmp_path, spec, sorted_sql)
    assert field == "sql" and "Sort on a non-time-attribute field is not supported" in problem


def test_a_window_table_function_plans_in_streaming_and_batch_mode_with_lineage(
    planner: FlinkPlanner, tmp_path: Path
) -> None:
    # the spec keeps `batch:`: a window TVF runs in batch mode (group windows do not)
    assert planned(planner, tmp_path, BASE, HOURLY) == []
    pipeline = load_pipeline(tmp_path / "daily_spend.yaml")
    source = pipeline.spec.sources[0]
    lineage = column_lineage(
        pipeline.sql_text, {source.name: source.sql_columns()}, [c.name for c in pipeline.spec.target.columns]
    )
    assert lineage == {
        "account": [("authorizations", "account")],
        "spend_day": [("authorizations", "event_time")],
        "authorizations": [],
        "spend_cents": [("authorizations", "amount_cents")],
    }


def test_group_windows_are_still_refused_for_batch_before_flink_is_asked(tmp_path: Path) -> None:
    grouped = SQL.replace(
        "CAST(event_time AS DATE) AS spend_day",
        "CAST(TUMBLE_START(event_time, INTERVAL '1' DAY) AS DATE) AS spend_day",
    ).replace(
        "GROUP BY account, CAST(event_time AS DATE)", "GROUP BY account, TUMBLE(event_time, INTERVAL '1' DAY)"
    )
    path = write(tmp_path, BASE, sql=grouped)
    with pytest.raises(Exception, match="group window function"):
        load_pipeline(path)


def test_validate_plans_with_flink_and_names_the_file(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from kappa_orch.cli import main

    write(tmp_path, BASE, sql=SQL.replace("SUM(amount_cents)", "SUM(amount_centz)"))
    result = CliRunner().invoke(main, ["validate", "--specs", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{tmp_path / 'daily_spend.yaml'}: sql: daily_spend.sql: Flink refuses the SELECT" in result.output
    assert "Traceback" not in result.output
    ok = CliRunner().invoke(main, ["validate", "--specs", str(ASSETS)])
    assert ok.exit_code == 0 and "4 pipeline spec(s) valid and planned by Flink" in ok.output
