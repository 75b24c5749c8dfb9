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
    assert source.startswith("CREATE TEMPORARY TABLE `kafka_authorizations` (")
    assert "`payload` STRING" in source
    assert "`amount_cents` AS TRY_CAST(JSON_VALUE(`payload`, '$.amount_cents') AS BIGINT)" in source
    assert "`account` AS JSON_VALUE(`payload`, '$.account')" in source
    assert "`event_time` AS TO_TIMESTAMP_LTZ(TRY_CAST(JSON_VALUE(`payload`, '$.ts') AS BIGINT), 3)" in source
    assert "WATERMARK FOR `event_time` AS `event_time` - INTERVAL '5' SECOND" in source
    assert "'properties.group.id' = 'kappa.daily_spend.v3'" in source
    assert "'scan.startup.mode' = 'earliest-offset'" in source
    assert "'format' = 'raw'" in source


def test_the_sql_reads_only_valid_events_and_broken_ones_get_a_reason() -> None:
    _, checked, valid = job("daily_spend").setup[:3]
    assert checked.startswith(
        "CREATE TEMPORARY VIEW `kappa_checked_authorizations` AS\n"
        "SELECT r.`payload`, r.`kafka_partition`, r.`kafka_offset`, t.`kappa_reason`, "
        "t.`kappa_v_auth_id` AS `auth_id`,"
    )
    assert (
        "r.`event_time`\nFROM `kafka_authorizations` AS r\nCROSS JOIN UNNEST(ARRAY[ROW(\n    CASE" in checked
    )
    assert checked.endswith(
        "AS t(`kappa_reason`, `kappa_v_auth_id`, `kappa_v_account`, `kappa_v_merchant`, "
        "`kappa_v_amount_cents`, `kappa_v_status`, `kappa_v_ts`)"
    )
    assert "WHEN NOT (`payload` IS JSON OBJECT) THEN CAST('not a JSON object' AS STRING)" in checked
    assert (
        "WHEN NOT JSON_EXISTS(`payload`, '$.amount_cents') "
        "THEN CAST('field amount_cents is missing or null' AS STRING)" in checked
    )
    assert "WHEN NOT REGEXP(JSON_VALUE(`payload`, '$.ts'), '^-?[0-9]+$')" in checked
    assert "WHEN `ts` IS NULL THEN CAST('field ts is not BIGINT' AS STRING)" in checked
    assert "`status` IS NULL" not in checked  # any scalar is a STRING
    assert "ELSE CAST('does not match the source schema' AS STRING)\n  END,\n    `auth_id`" in checked
    assert valid == (
        "CREATE TEMPORARY VIEW `authorizations` AS\n"
        "SELECT `auth_id`, `account`, `merchant`, `amount_cents`, `status`, `ts`, `event_time` "
        "FROM `kappa_checked_authorizations` WHERE `kappa_reason` IS NULL"
    )


def test_broken_events_go_to_the_dead_letter_topic_and_every_partition_is_counted() -> None:
    built = job("daily_spend")
    dead_letters = next(s for s in built.setup if "`kappa_dead_letters`" in s)
    assert "'topic' = 'kappa.dead-letters.daily_spend'" in dead_letters
    counts = next(s for s in built.setup if "`kappa_input_counts`" in s)
    assert "'table-name' = 'kappa_registry.input_counts'" in counts
    _, letters, counter = built.inserts
    assert letters.endswith("FROM `kappa_checked_authorizations` WHERE `kappa_reason` IS NOT NULL")
    assert "`kafka_partition`, `kafka_offset`, `kappa_reason`, `payload`" in letters
    assert counter.endswith("GROUP BY `kafka_partition`")


def test_sink_is_a_jdbc_upsert_into_the_version_table() -> None:
    built = job("daily_spend")
    sink = next(s for s in built.setup if "`kappa_sink`" in s)
    assert "PRIMARY KEY (`account`, `spend_day`) NOT ENFORCED" in sink
    assert "'table-name' = 'analytics.daily_spend__v3'" in sink
    assert built.inserts[0] == "INSERT INTO `kappa_sink`\n" + PIPELINES["daily_spend"].sql_text.strip()
    assert built.job_name == "kappa:daily_spend:v3"
    assert built.configuration["table.local-time-zone"] == "UTC"
    assert built.configuration["table.exec.mini-batch.enabled"] == "true"


def test_a_join_gets_one_source_table_per_topic() -> None:
    setup = job("auth_settlement").setup
    assert [s.split("(")[0].split(" AS")[0] for s in setup] == [
        "CREATE TEMPORARY TABLE `kafka_authorizations` ",
        "CREATE TEMPORARY VIEW `kappa_checked_authorizations`",
        "CREATE TEMPORARY VIEW `authorizations`",
        "CREATE TEMPORARY TABLE `kafka_settlements` ",
        "CREATE TEMPORARY VIEW `kappa_checked_settlements`",
        "CREATE TEMPORARY VIEW `settlements`",
        "CREATE TEMPORARY TABLE `kappa_sink` ",
        "CREATE TEMPORARY TABLE `kappa_dead_letters` ",
        "CREATE TEMPORARY TABLE `kappa_input_counts` ",
    ]
    assert "WATERMARK" not in setup[0]
