"""Where a lost job resumes from (issue 15, point 3): the checkpoint path Flink's REST API
reports for the old job, else the one the registry recorded for that same job; never a
listing of the checkpoint storage. And which observed checkpoints the observer records."""

from __future__ import annotations

from typing import Any

from kappa_orch.dagster.answers import StreamAnswers, recorded_checkpoints
from kappa_orch.engine.protocol import Checkpoint
from kappa_orch.lifecycle.restore import restore_path
from kappa_orch.registry import store as registry


class Cluster:
    """What Flink's REST API knows: job id -> its last completed checkpoint's path."""

    def __init__(self, known: dict[str, str | None]) -> None:
        self.known = known
        self.asked: list[str] = []

    def latest_retained_checkpoint(self, job_id: str) -> str | None:
        self.asked.append(job_id)
        return self.known.get(job_id)


def row(job: str | None, checkpoint: dict[str, Any] | None = None) -> registry.VersionRow:
    return registry.VersionRow(
        "daily_spend", 2, "f" * 64, "daily_spend__v2", registry.LIVE, job, "kappa.daily_spend.v2", None, None,
        checkpoint=checkpoint,
    )  # fmt: skip


RECORDED = {"job_id": "old", "checkpoint_id": 41, "path": "s3://b/cp/old/chk-41", "completed_at_ms": 1}


def test_the_rest_api_is_asked_first() -> None:
    cluster = Cluster({"old": "s3://b/cp/old/chk-44"})
    assert restore_path(row("old", RECORDED), cluster) == ("s3://b/cp/old/chk-44", "Flink's REST API")  # type: ignore[arg-type]
    assert cluster.asked == ["old"]


def test_a_job_the_cluster_forgot_resumes_from_the_registrys_record() -> None:
    path, told_by = restore_path(row("old", RECORDED), Cluster({}))  # type: ignore[arg-type]
    assert path == "s3://b/cp/old/chk-41" and told_by == "the registry (checkpoint 41)"


def test_a_record_of_another_job_is_not_used() -> None:
    # the record is of an earlier job of the version: its state is not the old job's
    assert restore_path(row("newer", RECORDED), Cluster({})) == (None, "")  # type: ignore[arg-type]
    assert restore_path(row("old", None), Cluster({})) == (None, "")  # type: ignore[arg-type]
    assert restore_path(row(None, RECORDED), Cluster({})) == (None, "")  # type: ignore[arg-type]
    assert restore_path(None, Cluster({})) == (None, "")  # type: ignore[arg-type]


def test_the_observer_records_only_newer_completed_checkpoints() -> None:
    answers = StreamAnswers(observed_at_ms=10)
    answers.checkpoints["old"] = Checkpoint(42, 5, "s3://b/cp/old/chk-42")
    answers.checkpoints["same"] = Checkpoint(41, 5, "s3://b/cp/same/chk-41")
    answers.checkpoints["none"] = None
    answers.checkpoints["pathless"] = Checkpoint(3, 5, None)
    same = {**RECORDED, "job_id": "same", "path": "s3://b/cp/same/chk-41"}
    watched = [
        (None, row("old", RECORDED)),
        (None, row("same", same)),
        (None, row("none")),
        (None, row("pathless")),
    ]
    [(recorded_row, value)] = recorded_checkpoints(watched, answers)  # type: ignore[arg-type]
    assert recorded_row.flink_job_id == "old"
    assert value == {"checkpoint_id": 42, "path": "s3://b/cp/old/chk-42", "completed_at_ms": 5}
