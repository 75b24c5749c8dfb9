"""Batch tables without servers: the spec rules, the generated SQL, the run split."""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path

import pytest
import yaml

from kappa_orch.engine.flink.batch import batch_job
from kappa_orch.engine.protocol import JobTarget
from kappa_orch.lifecycle.batch import consecutive_runs, log_needed_from
from kappa_orch.spec.load import SpecErrors, load_pipeline, load_pipelines
from kappa_orch.spec.model import Bootstrap, LoadedPipeline
from kappa_orch.spec.rules import day_start_ms
from tests.unit.specs import SQL, write

ASSETS = Path(__file__).resolve().parents[2] / "assets"
PIPELINE = next(p for p in load_pipelines(ASSETS) if p.name == "daily_spend")
JDBC = {"url": "jdbc:postgresql://127.0.0.1:5432/warehouse", "username": "u", "password": "p"}


def test_runs_of_consecutive_days() -> None:
    days = [date(2026, 1, d) for d in (1, 2, 3, 4, 5, 9, 10)]
    assert consecutive_runs(days, 3) == [
        [date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)],
        [date(2026, 1, 4), date(2026, 1, 5)],
        [date(2026, 1, 9), date(2026, 1, 10)],
    ]
    assert consecutive_runs([date(2026, 1, 2), date(2026, 1, 1), date(2026, 1, 2)], 7) == [
        [date(2026, 1, 1), date(2026, 1, 2)]
    ]


def test_batch_job_reads_from_the_first_day_to_the_end_and_filters_event_time() -> None:
    target = JobTarget("daily_spend_daily__stage_x", "kappa.batch.daily_spend", "127.0.0.1:9092", JDBC)
    job = batch_job(PIPELINE, (date(2026, 1, 2), date(2026, 1, 3)), target)
    begin, end = day_start_ms(date(2026, 1, 2)), day_start_ms(date(2026, 1, 4))
    _, _, source, checked, view, sink = job.setup  # the parse functions first
    assert checked.startswith("CREATE TEMPORARY VIEW `kappa_checked_authorizations` AS")
    assert "'scan.startup.mode' = 'timestamp'" in source
    assert f"'scan.startup.timestamp-millis' = '{begin}'" in source
    assert "'scan.bounded.mode' = 'latest-offset'" in source
    assert view.startswith("CREATE TEMPORARY VIEW `authorizations` AS\nSELECT")
    assert "FROM `kappa_checked_authorizations` WHERE `kappa_reason` IS NULL AND" in view  # valid events only
    assert (
        f"`event_time` >= TO_TIMESTAMP_LTZ({begin}, 3) AND `event_time` < TO_TIMESTAMP_LTZ({end}, 3)" in view
    )
    assert "'table-name' = 'analytics.daily_spend_daily__stage_x'" in sink
    assert job.configuration["execution.runtime-mode"] == "batch"


def test_batch_spec_rules(tmp_path: Path) -> None:
    base = yaml.safe_load((ASSETS / "daily_spend.yaml").read_text())
    wrong_day = copy.deepcopy(base)
    wrong_day["batch"]["day_column"] = "account"
    with pytest.raises(SpecErrors) as error:
        load_pipeline(write(tmp_path, wrong_day))
    assert error.value.problems[0].problem.endswith(
        "batch.day_column 'account' must be a DATE column of the target"
    )
    no_event_time = copy.deepcopy(base)
    del no_event_time["sources"][0]["event_time"]
    with pytest.raises(SpecErrors) as error:
        load_pipeline(
            write(tmp_path, no_event_time, sql=SQL.replace("CAST(event_time AS DATE)", "CURRENT_DATE"))
        )
    assert "batch needs an event_time on every source" in error.value.problems[0].problem
    assert PIPELINE.spec.batch_table == "daily_spend_daily"


def test_late_days_are_the_computed_days_with_records_past_what_they_read() -> None:
    from datetime import UTC, datetime

    from kappa_orch.lifecycle.batch import late_days

    def ts(day: int, hour: int = 12) -> int:
        return int(datetime(2026, 1, day, hour, tzinfo=UTC).timestamp() * 1000)

    reads = {
        date(2026, 1, 1): {"t": {"0": 100, "1": 50}},
        date(2026, 1, 2): {"t": {"0": 120, "1": 50}},
    }
    records = [
        ("t", 0, 99, ts(1)),  # read by day 1's run already
        ("t", 0, 110, ts(1)),  # after day 1's read: late
        ("t", 0, 115, ts(2)),  # day 2 read up to 120: not late
        ("t", 1, 60, ts(3)),  # day 3 was never computed: nothing to redo
        ("other", 0, 500, ts(2)),  # a topic day 2 did not read
    ]
    assert late_days(reads, records) == {date(2026, 1, 1)}


def with_bootstrap(until: date) -> LoadedPipeline:
    source = PIPELINE.spec.sources[0]
    bootstrap = Bootstrap(table="archive.auth_snapshot", until=until)
    spec = PIPELINE.spec.model_copy(update={"sources": [source.model_copy(update={"bootstrap": bootstrap})]})
    return PIPELINE.model_copy(update={"spec": spec})


def test_a_bootstrap_snapshot_covers_the_days_before_until() -> None:
    topic = PIPELINE.spec.sources[0].topic
    jan = [date(2026, 1, d) for d in range(1, 6)]
    assert log_needed_from(PIPELINE.spec, jan[0], jan[4]) == {topic: day_start_ms(jan[0])}
    snapshot = with_bootstrap(jan[2])
    assert log_needed_from(snapshot.spec, jan[0], jan[4]) == {topic: day_start_ms(jan[2])}
    assert log_needed_from(snapshot.spec, jan[0], jan[1]) == {}  # all from the snapshot
    assert log_needed_from(snapshot.spec, jan[3], jan[4]) == {topic: day_start_ms(jan[3])}

    job = batch_job(
        snapshot, (jan[0], jan[4]), JobTarget("stage", "kappa.batch.daily_spend", "127.0.0.1:9092", JDBC)
    )
    _, _, source, _, table, view, _ = job.setup
    assert f"'scan.startup.timestamp-millis' = '{day_start_ms(jan[2])}'" in source
    assert table.startswith("CREATE TEMPORARY TABLE `kappa_snapshot_authorizations` (")
    assert "'table-name' = 'archive.auth_snapshot'" in table
    assert "`event_time` AS TO_TIMESTAMP_LTZ(`ts`, 3)" in table
    log_part, snapshot_part = view.split("\nUNION ALL\n")
    assert f"`event_time` >= TO_TIMESTAMP_LTZ({day_start_ms(jan[2])}, 3)" in log_part
    assert snapshot_part.startswith("SELECT `auth_id`,")
    assert snapshot_part.endswith(
        f"`event_time` >= TO_TIMESTAMP_LTZ({day_start_ms(jan[0])}, 3) "
        f"AND `event_time` < TO_TIMESTAMP_LTZ({day_start_ms(jan[2])}, 3)"
    )


def test_bootstrap_spec_rules(tmp_path: Path) -> None:
    base = yaml.safe_load((ASSETS / "daily_spend.yaml").read_text())
    base["sources"][0]["bootstrap"] = {"table": "no_schema", "until": "2026-01-03"}
    with pytest.raises(SpecErrors) as error:
        load_pipeline(write(tmp_path, base))
    assert "bootstrap table 'no_schema' must be schema.table" in error.value.problems[0].problem


def test_a_late_records_day_is_its_event_time_not_its_arrival() -> None:
    import json

    from kappa_orch.dagster.backfill import event_times
    from kappa_orch.resources.kafka import Record

    topic = PIPELINE.spec.sources[0].topic
    arrived = 1_767_657_600_000  # 2026-01-06: days after the event

    def record(offset: int, payload: object) -> tuple[str, Record]:
        return topic, Record(offset % 3, offset, arrived, None, json.dumps(payload).encode())

    records = [
        record(1, {"ts": 1_767_348_000_000}),  # 2026-01-02 10:00
        record(2, {"ts": "yesterday"}),  # a dead letter: no day
        record(3, {"ts": 1.5e12}),  # not an integer: a dead letter
        record(4, {"ts": True}),
        record(5, [1, 2]),
        ("another.topic", Record(0, 6, arrived, None, b'{"ts": 1}')),
    ]
    assert event_times(PIPELINE, records) == [(topic, 1, 1, 1_767_348_000_000)]


def test_closed_days_are_over_and_in_the_batch_range_and_sampled() -> None:
    import random

    from kappa_orch.lifecycle.log_parity import closed_days, pick_days

    days = [date(2026, 1, d) for d in range(1, 11)]
    closed = closed_days([*days, days[3]], today=date(2026, 1, 10), start=date(2026, 1, 2))
    assert closed == [date(2026, 1, d) for d in range(2, 9)]  # not the 9th (yesterday) or the 10th
    assert pick_days(closed, 2, random.Random(1)) == sorted(pick_days(closed, 2, random.Random(1)))
    assert len(pick_days(closed, 2)) == 2 and pick_days(closed[:1], 2) == closed[:1]
    seen = {d for seed in range(60) for d in pick_days(closed, 2, random.Random(seed))}
    assert seen == set(closed)  # every closed day over time
