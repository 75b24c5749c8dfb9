"""The slice check without servers (issue 26, point 4): which offsets it replays and the
bounded job that replays them."""

from __future__ import annotations

from pathlib import Path

from kappa_orch.engine.flink.batch import slice_job, specific_offsets
from kappa_orch.engine.protocol import JobTarget
from kappa_orch.lifecycle.slice_check import SliceCheck, slice_ranges
from kappa_orch.registry.store import InputCount
from kappa_orch.spec.load import load_pipelines

BENCH = Path(__file__).resolve().parents[2] / "bench" / "specs"
JDBC = {"url": "jdbc:postgresql://127.0.0.1:5432/warehouse", "username": "u", "password": "p"}


def counted(partition: int, first: int, last: int, topic: str = "t") -> InputCount:
    return InputCount(topic, partition, last - first + 1, last - first + 1, 0, first, last)


def test_the_newest_records_before_the_fence_spread_over_the_partitions_read() -> None:
    counts = [counted(0, 0, 9_999), counted(1, 0, 99), counted(2, 500, 59_999)]
    ranges = slice_ranges(counts, {"t": {0: 0, 1: 0, 2: 500, 3: 0}}, 3_001)
    assert ranges == {
        "t": {
            0: (8_999, 10_000),  # the newest 1,001 of partition 0 (one more), up to the fence
            1: (0, 100),  # a partition with fewer: all of it
            2: (59_000, 60_000),
            3: (0, 0),  # nothing read of it before the fence: nothing replayed
        }
    }


def test_a_slice_starts_at_what_the_log_still_holds() -> None:
    ranges = slice_ranges([counted(0, 0, 999)], {"t": {0: 900}}, 500)
    assert ranges == {"t": {0: (900, 1_000)}}
    assert slice_ranges([], {"t": {0: 7, 1: 3}}, 500) == {"t": {0: (7, 7), 1: (3, 3)}}


def test_the_slice_job_reads_exactly_the_offsets_in_batch_mode() -> None:
    pipeline = next(p for p in load_pipelines(BENCH) if p.name == "auth_copy")
    target = JobTarget("auth_copy_v2__slice_x", "kappa.slice.auth_copy", "127.0.0.1:9092", JDBC)
    job = slice_job(pipeline, {"payments.authorizations": {1: (5, 9), 0: (0, 3)}}, target)
    source = next(s for s in job.setup if "CREATE TEMPORARY TABLE `kafka_authorizations`" in s)
    assert "'scan.startup.mode' = 'specific-offsets'" in source
    assert "'scan.startup.specific-offsets' = 'partition:0,offset:0;partition:1,offset:5'" in source
    assert "'scan.bounded.mode' = 'specific-offsets'" in source
    assert "'scan.bounded.specific-offsets' = 'partition:0,offset:3;partition:1,offset:9'" in source
    view = next(s for s in job.setup if s.startswith("CREATE TEMPORARY VIEW `authorizations`"))
    assert "WHERE `kappa_reason` IS NULL" in view  # valid events only, as the streaming job
    assert job.inserts == ["INSERT INTO `kappa_sink`\n" + pipeline.sql_text.strip().rstrip(";")]
    assert job.configuration["execution.runtime-mode"] == "batch"
    assert specific_offsets({}) == ""


def test_a_failed_slice_check_says_what_differs() -> None:
    passed = SliceCheck(2_000, 1_990, 0, 0)
    assert passed.passed and "1,990 rows, all equal" in passed.summary()
    failed = SliceCheck(2_000, 1_990, 1, 3, {"differing": [{"auth_id": "a1"}]})
    assert not failed.passed
    assert "1 missing from the derived rows, 3 with other values" in failed.summary()
    assert "(first: auth_id=a1)" in failed.summary()
    assert failed.record()["samples"] == {"differing": [{"auth_id": "a1"}]}
