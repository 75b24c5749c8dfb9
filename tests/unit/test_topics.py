"""What each source topic must be for the specs that read it (pure)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import yaml

from kappa_orch.lifecycle.topics import (
    FOREVER,
    KAFKA_DEFAULT_RETENTION_MS,
    declared_retention_warnings,
    topic_needs,
)
from kappa_orch.spec.load import load_pipelines
from kappa_orch.spec.rules import DAY_MS

ROOT = Path(__file__).resolve().parents[2]
TODAY = date(2026, 3, 1)  # daily_spend's batch starts 2026-01-01: 60 days of history


def _specs(tmp_path: Path, edit: dict[str, dict[str, object]]) -> Path:
    for name in ("daily_spend", "account_latest"):
        raw = yaml.safe_load((ROOT / "assets" / f"{name}.yaml").read_text())
        raw["sources"][0].update(edit.get(name, {}))
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        (tmp_path / f"{name}.sql").write_text((ROOT / "assets" / f"{name}.sql").read_text())
    return tmp_path


def test_a_topic_needs_the_longest_history_of_its_readers(tmp_path: Path) -> None:
    needs, conflicts = topic_needs(load_pipelines(_specs(tmp_path, {})), TODAY)
    [need] = needs
    assert conflicts == []
    assert need.readers == ("account_latest", "daily_spend")
    # the batch range (2026-01-01 .. today) is longer than start.retention_needed 7d
    assert need.needed_ms == 60 * DAY_MS
    assert "daily_spend: batch days from 2026-01-01" in need.needed_by
    # nothing declared: the deployment's default, raised to what is needed
    assert need.retention_to_create(None) == 60 * DAY_MS
    assert need.retention_to_create(FOREVER) == FOREVER
    assert need.retention_to_create(90 * DAY_MS) == 90 * DAY_MS


def test_declarations_win_and_disagreements_are_found(tmp_path: Path) -> None:
    specs = _specs(
        tmp_path,
        {"daily_spend": {"partitions": 6, "retention": "30d"}, "account_latest": {"partitions": 3}},
    )
    pipelines = load_pipelines(specs)
    [need], conflicts = topic_needs(pipelines, TODAY)
    assert conflicts == [
        "payments.authorizations: its readers (account_latest, daily_spend) declare different partitions"
    ]
    assert need.partitions == 6 and need.retention_to_create(None) == 30 * DAY_MS
    # 30 days kept, 60 needed by the batch range: validate warns
    [*_, warning] = declared_retention_warnings(pipelines, TODAY)
    assert "retention 30d is shorter than the 60d daily_spend: batch days" in warning


def test_forever_is_long_enough(tmp_path: Path) -> None:
    pipelines = load_pipelines(_specs(tmp_path, {"daily_spend": {"retention": "forever"}}))
    [need], _ = topic_needs(pipelines, TODAY)
    assert need.retention_ms == FOREVER
    assert declared_retention_warnings(pipelines, TODAY) == []
    assert KAFKA_DEFAULT_RETENTION_MS == 7 * DAY_MS


def test_the_plan_carries_a_retention_verdict_per_pipeline() -> None:
    from kappa_orch.lifecycle.topics import TopicNeed, TopicReport, retention_verdict

    need = TopicNeed("payments.authorizations", ("daily_spend", "merchant_risk"), None, None, 30 * 86_400_000)
    short = TopicReport(need, exists=True, retention_ms=7 * 86_400_000, problems=["keeps 7d, needs 30d"])
    other = TopicReport(
        TopicNeed("payments.settlements", ("auth_settlement",), None, None, None), exists=True
    )
    assert retention_verdict("daily_spend", [short, other]) == {
        "verdict": "too short",
        "topics": [
            {
                "topic": "payments.authorizations",
                "retention_ms": 7 * 86_400_000,
                "needed_ms": 30 * 86_400_000,
                "problems": ["keeps 7d, needs 30d"],
            }
        ],
    }
    assert retention_verdict("auth_settlement", [short, other])["verdict"] == "ok"
    assert retention_verdict("daily_spend", None) == {"verdict": "unknown", "topics": []}


def test_the_largest_declared_event_is_what_the_topic_must_take(tmp_path: Path) -> None:
    specs = _specs(tmp_path, {"daily_spend": {"max_message_bytes": 2_000_000}, "account_latest": {}})
    needs, conflicts = topic_needs(load_pipelines(specs), TODAY)
    assert not conflicts
    [need] = needs
    assert need.max_message_bytes == 2_000_000
    specs = _specs(tmp_path, {"daily_spend": {}, "account_latest": {}})
    assert topic_needs(load_pipelines(specs), TODAY)[0][0].max_message_bytes is None
