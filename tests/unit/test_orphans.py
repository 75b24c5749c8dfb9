"""Jobs kappa_orch started that the registry does not know (pure): found by their
deterministic names, the one a killed deploy left adoptable, the others to cancel."""

from __future__ import annotations

from kappa_orch.engine.protocol import EngineJob
from kappa_orch.lifecycle.orphans import find_orphans
from kappa_orch.registry import store as registry

NOW_MS = 1_800_000_000_000
OLD = NOW_MS - 600_000  # ten minutes ago


def row(version: int, state: str, job: str | None) -> registry.VersionRow:
    return registry.VersionRow(
        "daily_spend", version, "f", f"daily_spend__v{version}", state, job,
        f"kappa.daily_spend.v{version}", None, None,
    )  # fmt: skip


def job(job_id: str, name: str, state: str = "RUNNING", started: int = OLD) -> EngineJob:
    return EngineJob(job_id, name, state, started)


def test_unknown_jobs_are_found_by_name_and_the_killed_deploys_is_adoptable() -> None:
    # found: a kill between submitting and recording (2 of 2 trials) left a second
    # `kappa:<p>:v<N>` job running after the re-run, holding a slot, invisible to status
    rows = [row(1, registry.LIVE, "j1"), row(2, registry.DEPLOYING, None), row(3, registry.RETIRED, None)]
    jobs = [
        job("j1", "default/kappa:daily_spend:v1"),  # recorded: not an orphan
        job("a", "default/kappa:daily_spend:v2", started=OLD),
        job("b", "default/kappa:daily_spend:v2", started=OLD + 1000),  # the newer one is adopted
        job("c", "default/kappa:daily_spend:v3"),  # a retired version's job
        job("d", "default/kappa:daily_spend:v1"),  # a second job of a recorded version
        job("e", "default/kappa:daily_spend:v9", state="CANCELED"),  # not alive
        job("f", "other/kappa:daily_spend:v2"),  # another deployment's
        job("g", "default/kappa:daily_spend:batch:2026-01-01..2026-01-02"),  # a bounded batch job
        job(
            "h", "default/kappa:daily_spend:v2", started=NOW_MS - 5_000
        ),  # may be a live run's, just submitted
        job("i", "default/kappa:daily_spend:v1", started=NOW_MS - 1_000),  # v1's job is recorded: no grace
    ]
    found = find_orphans(jobs, rows, prefix="default/", now_ms=NOW_MS)
    assert [(o.job.job_id, o.version, o.adoptable) for o in found] == [
        ("i", 1, False),
        ("b", 2, True),
        ("a", 2, False),
        ("c", 3, False),
        ("d", 1, False),
    ]
    assert found[1].describe() == "job b (daily_spend v2, RUNNING)"
    # a caller holding the pipeline's claim knows no run is mid-submit: no grace
    assert "h" in {
        o.job.job_id for o in find_orphans(jobs, rows, prefix="default/", now_ms=NOW_MS, grace_s=0)
    }
