"""The reference deployment's automation: how often each sensor ticks.

The sensors, the jobs they request and the data-quality schedule come from
`build_kappa_definitions`; the schedule's cron is KAPPA_DATA_QUALITY_CRON (hourly).
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
)
