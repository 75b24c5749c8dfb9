"""A repair after a JobManager restart waits (bounded) for a TaskManager with a free
slot, and says what it waits for; a cluster with no TaskManager at all is named as such
(found: the first repair said "0 of 0 slots free; held by: jobs kappa_orch does not
know")."""

from __future__ import annotations

from kappa_orch.lifecycle.deploy_checks import no_taskmanager, wait_for_slot


class Cluster:
    """The slots a cluster reports, one answer per call (the last one repeats)."""

    def __init__(self, *answers: tuple[int, int]) -> None:
        self.answers = list(answers)
        self.asked = 0

    def slots(self) -> tuple[int, int]:
        self.asked += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def test_it_waits_until_a_taskmanager_registers_and_says_so_once() -> None:
    said: list[str] = []
    cluster = Cluster((0, 0), (0, 0), (8, 8))
    assert wait_for_slot(cluster, wait_s=60, log=said.append, poll_s=0) == (8, 8)  # type: ignore[arg-type]
    assert cluster.asked == 3
    waited = "waiting up to 60 s for a free task slot (the Flink cluster has no TaskManager registered yet)"
    assert said == [waited]


def test_it_gives_up_at_its_bound_with_what_it_saw_last() -> None:
    said: list[str] = []
    cluster = Cluster((0, 8))
    assert wait_for_slot(cluster, wait_s=0.05, log=said.append, poll_s=0.01) == (0, 8)  # type: ignore[arg-type]
    assert said == ["waiting up to 0 s for a free task slot (the Flink cluster has 0 of 8 task slots free)"]


def test_a_free_slot_is_taken_at_once() -> None:
    said: list[str] = []
    assert wait_for_slot(Cluster((3, 8)), wait_s=60, log=said.append) == (3, 8)  # type: ignore[arg-type]
    assert said == []


def test_no_taskmanager_is_not_called_a_slot_shortage() -> None:
    error = no_taskmanager("daily_spend", 2)
    assert "no TaskManager registered" in error.problem and "held by" not in error.problem
    assert "kappa-orch stack up" in error.fix and "nothing was submitted" in error.fix
    assert error.blame == "infrastructure"
