"""The Flink SQL generated for a version (checked for real by the integration tests)."""

from __future__ import annotations

from pathlib import Path

from kappa_orch.flink_sources import LETTER_PAYLOAD_CHARS, interval, rejection_reason
from kappa_orch.flink_sql import job_configuration, version_job
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


TEXT = "CAST(`payload_bytes` AS STRING)"


def test_sources_read_bytes_and_declare_the_watermark() -> None:
    source = job("daily_spend").setup[0]
    assert source.startswith("CREATE TEMPORARY TABLE `kafka_authorizations` (")
    assert "`payload_bytes` BYTES" in source
    assert "`kafka_timestamp` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL" in source
    assert f"`payload` AS {TEXT}" in source
    assert f"`amount_cents` AS TRY_CAST(JSON_VALUE({TEXT}, '$.amount_cents') AS BIGINT)" in source
    assert f"`account` AS JSON_VALUE({TEXT}, '$.account')" in source
    assert f"`event_time` AS TO_TIMESTAMP_LTZ(TRY_CAST(JSON_VALUE({TEXT}, '$.ts') AS BIGINT), 3)" in source
    assert "'properties.group.id' = 'kappa.daily_spend.v3'" in source
    assert "'scan.startup.mode' = 'earliest-offset'" in source
    assert "'format' = 'raw'" in source


def test_only_valid_plausible_events_move_the_watermark() -> None:
    source = job("daily_spend").setup[0]
    watermark = source[source.index("WATERMARK FOR") :].split("\n")[0]
    assert watermark.startswith("WATERMARK FOR `event_time` AS CASE WHEN ")
    assert watermark.endswith("THEN `event_time` - INTERVAL '0 00:00:05.000' DAY(3) TO SECOND(3) END")
    # every declared column present and typed, text without NUL, UTF-8, and not ahead of the log
    assert f"JSON_VALUE({TEXT}, '$.account') IS NOT NULL" in watermark
    assert f"REGEXP(JSON_VALUE({TEXT}, '$.amount_cents'), '^-?[0-9]+$')" in watermark
    assert f"NOT REGEXP(JSON_VALUE({TEXT}, '$.status'), '\\u0000')" in watermark
    assert f"CAST({TEXT} AS BYTES) = `payload_bytes`" in watermark
    assert (
        f"COALESCE(TO_TIMESTAMP_LTZ(TRY_CAST(JSON_VALUE({TEXT}, '$.ts') AS BIGINT), 3) <= "
        "`kafka_timestamp` + INTERVAL '0 01:00:00.000' DAY(3) TO SECOND(3), FALSE)" in watermark
    )


def test_durations_become_intervals_without_overflow() -> None:
    assert interval("5s") == "INTERVAL '0 00:00:05.000' DAY(3) TO SECOND(3)"
    assert interval("500ms") == "INTERVAL '0 00:00:00.500' DAY(3) TO SECOND(3)"
    assert interval("2h") == "INTERVAL '0 02:00:00.000' DAY(3) TO SECOND(3)"
    assert interval("400d") == "INTERVAL '400 00:00:00.000' DAY(3) TO SECOND(3)"


def test_the_sql_reads_only_valid_events_and_broken_ones_get_a_reason() -> None:
    _, checked, valid = job("daily_spend").setup[:3]
    assert checked.startswith(
        "CREATE TEMPORARY VIEW `kappa_checked_authorizations` AS\n"
        "SELECT r.`payload_bytes`, r.`payload`, r.`kafka_partition`, r.`kafka_offset`, t.`kappa_reason`, "
        "t.`kappa_v_auth_id` AS `auth_id`,"
    )
    assert (
        "r.`event_time`\nFROM `kafka_authorizations` AS r\nCROSS JOIN UNNEST(ARRAY[ROW(\n    CASE" in checked
    )
    assert checked.endswith(
        "AS t(`kappa_reason`, `kappa_v_auth_id`, `kappa_v_account`, `kappa_v_merchant`, "
        "`kappa_v_amount_cents`, `kappa_v_status`, `kappa_v_ts`)"
    )
    reasons = [
        "WHEN `payload_bytes` IS NULL THEN CAST('empty payload (tombstone)' AS STRING)",
        f"WHEN NOT (CAST({TEXT} AS BYTES) = `payload_bytes`) "
        "THEN CAST('payload is not valid UTF-8' AS STRING)",
        "WHEN NOT (`payload` IS JSON OBJECT) THEN CAST('not a JSON object' AS STRING)",
        "WHEN REGEXP(`account`, '\\u0000') THEN CAST('field account contains a NUL character' AS STRING)",
        "WHEN NOT JSON_EXISTS(`payload`, '$.amount_cents') "
        "THEN CAST('field amount_cents is missing or null' AS STRING)",
        "WHEN `ts` IS NULL THEN CAST('field ts is not BIGINT' AS STRING)",
        "THEN CAST('event time ts is more than 1h ahead of the record''s Kafka timestamp "
        "(event_time.max_ahead)' AS STRING)",
    ]
    positions = [checked.index(r) for r in reasons]
    assert positions == sorted(positions)  # the first thing wrong is the reason
    assert f"WHEN NOT REGEXP(JSON_VALUE({TEXT}, '$.ts'), '^-?[0-9]+$')" in checked
    assert "`status` IS NULL" not in checked  # any scalar is a STRING
    assert "ELSE CAST('does not match the source schema' AS STRING)\n  END,\n    `auth_id`" in checked
    assert valid == (
        "CREATE TEMPORARY VIEW `authorizations` AS\n"
        "SELECT `auth_id`, `account`, `merchant`, `amount_cents`, `status`, `ts`, `event_time` "
        "FROM `kappa_checked_authorizations` WHERE `kappa_reason` IS NULL"
    )


def test_without_max_ahead_event_times_are_not_judged() -> None:
    pipeline = PIPELINES["daily_spend"]
    [source] = pipeline.spec.sources
    assert source.event_time is not None
    lenient = source.model_copy(
        update={"event_time": source.event_time.model_copy(update={"max_ahead": None})}
    )
    assert "kafka_timestamp` +" not in rejection_reason(lenient)
    assert "ahead of" not in rejection_reason(lenient)


def test_broken_events_go_to_the_dead_letter_topic_bounded_and_every_partition_is_counted() -> None:
    built = job("daily_spend")
    dead_letters = next(s for s in built.setup if "`kappa_dead_letters`" in s)
    assert "'topic' = 'kappa.dead-letters.daily_spend'" in dead_letters
    for column in ("`payload_encoding` STRING", "`payload_size` INT", "`payload_sha256` STRING"):
        assert column in dead_letters
    counts = next(s for s in built.setup if "`kappa_input_counts`" in s)
    assert "'table-name' = 'kappa_counts.input_counts'" in counts
    _, letters, counter = built.inserts
    assert letters.endswith("FROM `kappa_checked_authorizations` WHERE `kappa_reason` IS NOT NULL")
    assert "`kafka_partition`, `kafka_offset`, `kappa_reason`, CASE WHEN" in letters
    # a bounded prefix of the payload: text, or base64 of bytes that are not UTF-8
    assert f"SUBSTRING(TO_BASE64(`payload_bytes`), 1, {LETTER_PAYLOAD_CHARS})" in letters
    assert f"ELSE SUBSTRING(`payload`, 1, {LETTER_PAYLOAD_CHARS}) END" in letters
    assert (
        "CHAR_LENGTH(TRIM(TRAILING '=' FROM TO_BASE64(`payload_bytes`)))), SHA256(`payload_bytes`)" in letters
    )
    assert counter.endswith("GROUP BY `kafka_partition`")


def test_allowed_lateness_turns_on_late_firing() -> None:
    assert "table.exec.emit.allow-lateness" not in job("merchant_risk").configuration
    pipeline = PIPELINES["merchant_risk"]
    spec = pipeline.spec.model_copy(update={"allowed_lateness": "10m"})
    configuration = job_configuration(spec)
    assert configuration["table.exec.emit.allow-lateness"] == "600000 ms"
    assert configuration["table.exec.emit.late-fire.enabled"] == "true"
    assert configuration["table.exec.emit.late-fire.delay"] == "0 ms"


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
