"""The names of kappa_orch's sensors, defined once: the sensor factories default to them,
`AutomationSettings` checks `stopped_sensors` against them, and the docs and the UI show
them."""

from __future__ import annotations

STREAM_OBSERVER = "kappa_stream_observer"
REPROCESS_SENSOR = "kappa_reprocess_sensor"
REPAIR_SENSOR = "kappa_repair_sensor"
RETIRE_SENSOR = "kappa_retire_sensor"
LATE_DATA_SENSOR = "kappa_late_data_sensor"
FAILED_DAY_SENSOR = "kappa_failed_day_sensor"
PLATFORM_PAGE = "kappa_platform_page"

SENSOR_NAMES = (
    STREAM_OBSERVER,
    REPROCESS_SENSOR,
    REPAIR_SENSOR,
    RETIRE_SENSOR,
    LATE_DATA_SENSOR,
    FAILED_DAY_SENSOR,
    PLATFORM_PAGE,
)
# sensors that redeploy jobs or drop tables by themselves: stopped unless a deployment
# turns them on (the reference deployment does, sensors/__init__.py)
ACTING_SENSORS = (REPAIR_SENSOR, RETIRE_SENSOR)
