"""`kappa-orch status` as a table: aligned columns, one health word per pipeline, the last
swap, failed scheduled checks (found: the output was unaligned, without a header, and a
failed scheduled check was nowhere in it)."""

from __future__ import annotations

from datetime import UTC, datetime

from kappa_orch.cli.status_view import render, table
from kappa_orch.dagster.platform_page import PLATFORM_KEY, platform_observation
from kappa_orch.lifecycle.row_diff import failing_rows
from kappa_orch.lifecycle.status import PipelineStatus, VersionStatus

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def version(n: int, state: str, **extra: object) -> VersionStatus:
    fields: dict = {
        "version": n, "fingerprint": f"fp{n}", "physical_table": f"analytics.daily_spend__v{n}",
        "state": state, "flink_job_id": f"j{n}", "job_state": "RUNNING", "lag": 12_345, "error": None,
        "input": 400_000, "dead_lettered": 37, "late_records": {"w": 0}, "checkpoint_age_s": 4.2,
    }  # fmt: skip
    fields.update(extra)
    return VersionStatus(**fields)


def pipeline(name: str, **extra: object) -> PipelineStatus:
    fields: dict = {
        "pipeline": name, "alias": f"analytics.{name}", "desired_fingerprint": "fp2", "live_version": 2,
        "in_sync": True, "dead_letter_topic": f"kappa.dead-letters.{name}",
        "versions": [version(1, "ready"), version(2, "live")],
        "last_swap": {"from": 1, "to": 2, "at": "2026-11-27T09:55:00+00:00", "reason": "reprocess",
                      "by": "ana", "git_commit": "abc", "run_id": "r1"},
    }  # fmt: skip
    fields.update(extra)
    return PipelineStatus(**fields)


def test_columns_line_up_under_their_header_and_numbers_align_right() -> None:
    lines = table(["NAME", "LAG"], [["a", "1"], ["longer_name", "12,345"]])
    assert lines == ["NAME            LAG", "a                 1", "longer_name  12,345"]
    _, *rows = lines
    assert all(row.endswith(cell) for row, cell in zip(rows, ["1", "12,345"], strict=True))


def test_the_overview_has_a_header_and_one_coloured_row_per_pipeline() -> None:
    failed = {"check": "serving_expectations", "passed": False, "summary": "1 unexpected",
              "at": "2026-11-27T09:00:00", "run_id": "r9"}  # fmt: skip
    statuses = [
        pipeline("daily_spend"),
        pipeline("auth_settlement", degraded=True, in_sync=False),
        pipeline("account_latest", checks=[failed], warnings=["scheduled check serving_expectations failed"]),
        pipeline("new_one", live_version=None, in_sync=False, versions=[], last_swap=None),
    ]
    lines = render(statuses, NOW)
    header = lines[0][0]
    assert header.split() == [
        *["PIPELINE", "ALIAS", "LIVE", "HEALTH", "LAG", "CHECKPOINT", "LATE"],
        "DEAD",
        "LETTERS",
        "LAST",
        "SWAP",
        "LAST",
        "CHECK",
    ]
    rows = {text.split()[0]: (text, colour) for text, colour in lines[1:5]}
    assert rows["daily_spend"][1] == "green" and "in sync" in rows["daily_spend"][0]
    assert rows["auth_settlement"][1] == "red" and "DEGRADED" in rows["auth_settlement"][0]
    assert rows["account_latest"][1] == "red" and "CHECK FAILED" in rows["account_latest"][0]
    assert "serving_expectations FAILED" in rows["account_latest"][0]
    assert rows["new_one"][1] == "yellow" and "not deployed" in rows["new_one"][0]
    text = rows["daily_spend"][0]
    assert "v1 -> v2 reprocess, 300s ago" in text or "v1 -> v2 reprocess, 5m ago" in text
    assert "12,345" in text and "4s" in text and "37" in text
    # every row is as wide as the columns: LAST SWAP starts at the same place in each
    start = header.index("LAST SWAP")
    assert all(t[start - 2 : start] == "  " for t, _ in lines[1:5])


def test_details_list_versions_warnings_and_errors() -> None:
    broken = version(
        3, "failed", job_state=None, lag=None, checkpoint_age_s=None, error="gate: expect_x failed\nmore"
    )
    lines = [
        text for text, _ in render([pipeline("daily_spend", versions=[version(2, "live"), broken])], NOW)
    ]
    head = "daily_spend: alias analytics.daily_spend -> v2 (in sync); dead letters -> "
    assert head + "kappa.dead-letters.daily_spend" in lines
    [row3] = [t for t in lines if t.strip().startswith("v3 ") and "fp3" in t]
    assert row3.split()[:4] == ["v3", "fp3", "failed", "-"]
    assert "  v3 error: gate: expect_x failed" in lines


def test_a_catching_up_version_shows_its_progress_and_under_watch_its_rate_and_time_left() -> None:
    # issue 29, point 4: while a candidate catches up, status --watch shows percent, rate, ETA
    earlier = pipeline(
        "daily_spend", versions=[version(2, "live"), version(3, "catching_up", input=100_000, lag=300_000)]
    )
    now = pipeline(
        "daily_spend", versions=[version(2, "live"), version(3, "catching_up", input=200_000, lag=200_000)]
    )
    once = [text for text, _ in render([now], NOW)]
    assert "  v3 catching up: 50% (200,000 of 400,000 records), rate and time left with --watch" in once
    watched = [text for text, _ in render([now], NOW, [earlier], 10.0)]
    assert "  v3 catching up: 50% (200,000 of 400,000 records), 10,000 records/s, about 20s left" in watched
    first_round = [text for text, _ in render([now], NOW, [], 0.0)]
    assert "  v3 catching up: 50% (200,000 of 400,000 records)" in first_round
    assert not any("v2 catching up" in text for text in watched)


def test_the_platform_page_is_the_status_table_in_the_ui() -> None:
    # issue 29, point 3: one asset shows every pipeline, with the rows `status` prints
    failed = {"check": "matches_the_log", "passed": False, "summary": "2 rows differ",
              "at": "2026-11-27T09:30:00+00:00", "run_id": "r9"}  # fmt: skip
    statuses = [pipeline("daily_spend"), pipeline("account_latest", checks=[failed])]
    observed = platform_observation(statuses, NOW)
    assert observed.asset_key == PLATFORM_KEY
    table_value = observed.metadata["pipelines"].value
    records = [record.data for record in table_value.records]
    assert [r["pipeline"] for r in records] == ["daily_spend", "account_latest"]
    assert records[0]["health"] == "in sync" and records[0]["live"] == "v2" and records[0]["lag"] == "12,345"
    assert (
        records[1]["health"] == "CHECK FAILED"
        and records[1]["last_check"] == "matches_the_log FAILED, 30m ago"
    )
    assert records[0]["last_swap"] == "v1 -> v2 reprocess, 5m ago"
    assert observed.metadata["needing_attention"].value == 1
    assert observed.metadata["summary"].value == "2 pipeline(s); needing attention: account_latest"
    # the same cells as the CLI's table, column for column
    cli_row = render(statuses, NOW)[1][0].split("  ")
    assert [c.strip() for c in cli_row if c.strip()][:4] == [
        "daily_spend",
        "analytics.daily_spend",
        "v2",
        "in sync",
    ]


def test_a_failed_gate_shows_the_rows_it_named() -> None:
    # issue 29, point 6: the rows are in the CLI, not only in the Dagster check's metadata
    metadata = {
        "results": [
            {"expectation": "expect_column_values_to_be_between", "success": False,
             "sample_rows": [{"account": "acct-7", "spend_day": "2026-11-26"}]},
            {"expectation": "expect_column_values_to_not_be_null", "success": True, "sample_rows": []},
        ],
        "row_diff": {"comparable": True, "added": 0, "removed": 1, "changed": 1, "added_sample": [],
                     "removed_sample": [{"account": "acct-9"}],
                     "changed_sample": [{"account": "acct-3", "spend_cents": "100 -> 90"}]},
    }  # fmt: skip
    rows = failing_rows(metadata)
    assert rows == [
        "expect_column_values_to_be_between: {'account': 'acct-7', 'spend_day': '2026-11-26'}",
        "removed: {'account': 'acct-9'}",
        "changed: {'account': 'acct-3', 'spend_cents': '100 -> 90'}",
    ]
    failed = version(3, "failed", gate_rows=[f"parity_with_live: {r}" for r in rows[1:]])
    lines = [
        text for text, _ in render([pipeline("daily_spend", versions=[version(2, "live"), failed])], NOW)
    ]
    at = lines.index("  v3 failing rows:")
    assert lines[at + 1 : at + 3] == [
        "    parity_with_live: removed: {'account': 'acct-9'}",
        "    parity_with_live: changed: {'account': 'acct-3', 'spend_cents': '100 -> 90'}",
    ]
