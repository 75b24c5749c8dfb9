"""The Flink SQL generated for a version (checked for real by the integration tests)."""

from __future__ import annotations

from pathlib import Path

from kappa_orch.flink_sql import version_job
from kappa_orch.spec.load import load_pipelines

ASSETS = Path(__file__).resolve().parents[2] / "assets"
PIPELINES = {p.name: p for p in load_pipelines(ASSETS)}
JDBC = {"url": "jdbc:postgresql://127.0.0.1:5432/warehouse", "username": "u", "password": "p"}


def job(name: str):  # type: ignore[no-untyped-def]
    pipeline = PIPELINES[name]
    return version_job(
        pipeline.spec,
        pipeline.sql_text,
        version=3,
        physical_table=pipeline.spec.target.version_table(3),
        group_id=f"kappa.{name}.v3",
        bootstrap="127.0.0.1:9092",
        jdbc=JDBC,
    )


def test_sources_parse_raw_events_and_declare_the_watermark() -> None:
    source = job("daily_spend").setup[0]
    assert source.startswith("CREATE TEMPORARY TABLE `authorizations` (")
    assert "`payload` STRING" in source
    assert "`amount_cents` AS TRY_CAST(JSON_VALUE(`payload`, '$.amount_cents') AS BIGINT)" in source
    assert "`account` AS JSON_VALUE(`payload`, '$.account')" in source
    assert "`event_time` AS TO_TIMESTAMP_LTZ(TRY_CAST(JSON_VALUE(`payload`, '$.ts') AS BIGINT), 3)" in source
    assert "WATERMARK FOR `event_time` AS `event_time` - INTERVAL '5' SECOND" in source
    assert "'properties.group.id' = 'kappa.daily_spend.v3'" in source
    assert "'scan.startup.mode' = 'earliest-offset'" in source
    assert "'format' = 'raw'" in source


def test_sink_is_a_jdbc_upsert_into_the_version_table() -> None:
    built = job("daily_spend")
    sink = built.setup[-1]
    assert "PRIMARY KEY (`account`, `spend_day`) NOT ENFORCED" in sink
    assert "'table-name' = 'analytics.daily_spend__v3'" in sink
    assert built.inserts == ["INSERT INTO `kappa_sink`\n" + PIPELINES["daily_spend"].sql_text.strip()]
    assert built.job_name == "kappa:daily_spend:v3"
    assert built.configuration == {"table.local-time-zone": "UTC"}


def test_a_join_gets_one_source_table_per_topic() -> None:
    setup = job("auth_settlement").setup
    assert [s.split("(")[0] for s in setup] == [
        "CREATE TEMPORARY TABLE `authorizations` ",
        "CREATE TEMPORARY TABLE `settlements` ",
        "CREATE TEMPORARY TABLE `kappa_sink` ",
    ]
    assert "WATERMARK" not in setup[0]
