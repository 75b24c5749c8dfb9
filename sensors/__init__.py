"""The reference deployment's automation: how often each sensor ticks.

The sensors, the jobs they request and the data-quality schedule come from
`build_kappa_definitions`; the schedule's cron is KAPPA_DATA_QUALITY_CRON (hourly).

The library starts the sensors that act without a person (kappa_repair_sensor redeploys
lost jobs from their checkpoints, kappa_retire_sensor drops replaced versions' tables
after their grace period) stopped; this deployment runs them from the start, because
its platform is meant to heal itself and its alias keeps a rollback target for the
grace period.
"""

from __future__ import annotations

from kappa_orch import AutomationSettings

AUTOMATION = AutomationSettings(
    observe_interval_s=30,
    reprocess_interval_s=30,
    repair_interval_s=30,
    retire_interval_s=300,
    late_data_interval_s=60,
    failed_day_interval_s=60,
    stopped_sensors=[],  # repair and retire run from the start too
)
