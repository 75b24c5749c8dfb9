"""Window table functions run on the real cluster: merchant_risk written with
`TABLE(TUMBLE(TABLE authorizations, DESCRIPTOR(event_time), INTERVAL '1' HOUR))`
instead of a group window serves exactly the oracle's closed hourly windows, over the
realistic log (skewed partitions, broken and wrong-clock events)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.spec.sql import column_lineage
from kappa_orch.stack.config import StackConfig
from tests.integration import scale
from tests.integration.at_scale import await_rows, expected, produce
from tests.integration.platform import Platform, isolated_platform, run_reprocess

pytestmark = pytest.mark.integration

TVF = """-- closed hourly windows, as a window table function
SELECT
  merchant,
  window_start,
  COUNT(*) AS authorizations,
  SUM(CASE WHEN status = 'declined' THEN 1 ELSE 0 END) AS declines,
  SUM(amount_cents) AS amount_cents
FROM TABLE(TUMBLE(TABLE authorizations, DESCRIPTOR(event_time), INTERVAL '1' HOUR))
GROUP BY merchant, window_start, window_end
"""


@pytest.fixture
def platform(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> Iterator[Platform]:
    with isolated_platform(stack, kafka, flink, tmp_path, only=["merchant_risk"]) as isolated:
        yield isolated


def test_a_window_table_function_serves_the_oracles_windows(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource
) -> None:
    log = scale.scale_log(30_000)
    produce(kafka, platform.topic("payments.authorizations"), log.auth_log, [0, 1, 2])
    pipeline = platform.set_sql("merchant_risk", TVF)
    source = pipeline.spec.sources[0]
    lineage = column_lineage(
        pipeline.sql_text, {source.name: source.sql_columns()}, [c.name for c in pipeline.spec.target.columns]
    )
    assert lineage["window_start"] == [("authorizations", "event_time")]
    assert lineage["amount_cents"] == [("authorizations", "amount_cents")]
    assert run_reprocess(platform, pipeline, kafka, flink).success
    await_rows(
        platform.warehouse,
        {"merchant_risk": pipeline},
        {"merchant_risk": expected(log, log.authorizations)["merchant_risk"]},
    )
