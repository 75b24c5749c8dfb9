"""What `plan` shows before it acts: the diff from the live version and the replay's cost."""

from __future__ import annotations

import shutil
from pathlib import Path

from kappa_orch.plan.report import replay_report
from kappa_orch.registry import store as registry
from kappa_orch.spec.load import load_pipelines

ASSETS = Path(__file__).resolve().parents[2] / "assets"


def test_the_diff_from_the_live_definition_and_the_estimate(tmp_path: Path) -> None:
    for name in ("daily_spend.yaml", "daily_spend.sql"):
        shutil.copy(ASSETS / name, tmp_path / name)
    live_sql = (tmp_path / "daily_spend.sql").read_text()
    (tmp_path / "daily_spend.sql").write_text(live_sql.replace("'approved'", "'declined'"))
    [pipeline] = load_pipelines(tmp_path)
    live = registry.VersionRow(
        pipeline="daily_spend",
        version=1,
        fingerprint="f",
        physical_table="daily_spend__v1",
        state=registry.LIVE,
        flink_job_id="j",
        group_id="g",
        deployed_offsets=None,
        error=None,
        definition={
            "sql": live_sql,
            "spec": (tmp_path / "daily_spend.yaml").read_text(),
            "catch_up": {"events_per_s": 2_000.0},
        },
    )
    report = replay_report(pipeline, live, records_held=100_000)
    assert "-WHERE status = 'approved'" in report.sql_diff
    assert "+WHERE status = 'declined'" in report.sql_diff
    assert report.spec_diff == []  # the YAML did not change
    assert (report.records_to_read, report.events_per_s, report.estimate_s) == (100_000, 2_000.0, 50.0)
    # a first deploy: nothing to diff against, no measured speed
    first = replay_report(pipeline, None, records_held=10)
    assert first.sql_diff == [] and first.estimate_s is None
