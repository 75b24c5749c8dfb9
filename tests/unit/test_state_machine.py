"""The registry's state machine: one table of allowed transitions, enforced in one place."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

from kappa_orch.registry.states import TRANSITIONS, IllegalTransition, VersionState, check_transition

LIBRARY = Path(__file__).resolve().parents[2] / "kappa_orch"


def test_every_state_has_its_row_and_targets_are_states() -> None:
    assert set(TRANSITIONS) == set(VersionState)
    assert all(target in VersionState for targets in TRANSITIONS.values() for target in targets)


def test_the_healthy_path_and_a_rollback_are_allowed() -> None:
    path = ["deploying", "catching_up", "checking", "ready", "live", "ready", "live", "ready", "retired"]
    for before, after in itertools.pairwise(path):
        check_transition("p", 1, before, after)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("retired", "live"),  # a dropped table never serves again
        ("failed", "live"),  # only a gated version goes live
        ("catching_up", "live"),
        ("live", "retired"),  # the live version is never retired
        ("live", "failed"),
        ("deploying", "ready"),  # nothing skips the gate
    ],
)
def test_an_illegal_transition_names_both_states(before: str, after: str) -> None:
    with pytest.raises(IllegalTransition) as raised:
        check_transition("daily_spend", 3, before, after)
    assert f"daily_spend v3 cannot go from {before} to {after}" in raised.value.problem


def test_staying_in_a_state_is_allowed() -> None:
    for state in VersionState:
        check_transition("p", 1, state, state)


def test_states_are_written_only_through_the_registry() -> None:
    # every write of a version's state goes through registry.transitions (whose one writer
    # checks it) or registry.add_version (which starts at deploying): no module updates the column itself
    offenders = []
    for path in LIBRARY.rglob("*.py"):
        if path.relative_to(LIBRARY).as_posix() in {"registry/store.py", "registry/transitions.py"}:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            writes = isinstance(node, ast.Call) and getattr(node.func, "attr", "") in {"update", "values"}
            if writes and any(k.arg == "state" for k in node.keywords):  # type: ignore[attr-defined]
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
