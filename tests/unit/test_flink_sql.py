"""The Flink SQL generated for a version (checked for real by the integration tests)."""

from __future__ import annotations

from pathlib import Path

from kappa_orch.engine.flink.sources import LETTER_PAYLOAD_CHARS, event_schema, interval
from kappa_orch.engine.flink.sql import job_configuration, version_job
from kappa_orch.engine.protocol import JobTarget
from kappa_orch.spec.load import load_pipelines

ASSETS = Path(__file__).resolve().parents[2] / "assets"
PIPELINES = {p.name: p for p in load_pipelines(ASSETS)}
JDBC = {"url": "jdbc:postgresql://127.0.0.1:5432/warehouse", "username": "u", "password": "p"}


def job(name: str, **changes: object):  # type: ignore[no-untyped-def]
    pipeline = PIPELINES[name]
    target = JobTarget(pipeline.spec.target.version_table(3), f"kappa.{name}.v3", "127.0.0.1:9092", JDBC)
    return version_job(pipeline.spec.model_copy(update=changes), pipeline.sql_text, 3, target)


TEXT = "CAST(`payload_bytes` AS STRING)"
CREATE = "CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS"
SCHEMA = (
    "from=ts|ahead_ms=3600000|ahead=1h|auth_id:STRING|account:STRING|merchant:STRING|"
    "amount_cents:BIGINT|status:STRING|ts:BIGINT"
)


def test_every_job_registers_the_stacks_parse_functions_first() -> None:
    setup = job("daily_spend").setup
    assert setup[:2] == [
        f"{CREATE} KAPPA_PARSE AS 'io.kappaorch.flink.ParseEvent' LANGUAGE JAVA",
        f"{CREATE} KAPPA_EVENT_MILLIS AS 'io.kappaorch.flink.EventMillis' LANGUAGE JAVA",
    ]


def test_sources_read_bytes_and_declare_the_watermark() -> None:
    source = job("daily_spend").setup[2]
    assert source.startswith("CREATE TEMPORARY TABLE `kafka_authorizations` (")
    assert "`payload_bytes` BYTES" in source
    assert "`kafka_timestamp` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL" in source
    assert f"`payload` AS {TEXT}" in source
    assert "JSON_VALUE" not in source  # the declared columns are parsed once, in the view
    assert "'properties.group.id' = 'kappa.daily_spend.v3'" in source
    assert "'scan.startup.mode' = 'earliest-offset'" in source
    assert "'format' = 'raw'" in source


def test_only_valid_plausible_events_move_the_watermark() -> None:
    # KAPPA_EVENT_MILLIS is NULL for every event that is dead-lettered (EventParser),
    # implausible ones included, and the watermark generator skips NULLs
    source = job("daily_spend").setup[2]
    assert (
        "`event_time` AS TO_TIMESTAMP_LTZ("
        f"KAPPA_EVENT_MILLIS(`payload_bytes`, `kafka_timestamp`, '{SCHEMA}'), 3)" in source
    )
    assert (
        "WATERMARK FOR `event_time` AS `event_time` - INTERVAL '0 00:00:05.000' DAY(3) TO SECOND(3)" in source
    )


def test_the_schema_literal_carries_types_coercion_and_the_event_time_rule() -> None:
    [source] = PIPELINES["daily_spend"].spec.sources
    assert event_schema(source) == SCHEMA
    assert source.event_time is not None
    lenient = source.model_copy(
        update={"event_time": source.event_time.model_copy(update={"max_ahead": None})}
    )
    assert event_schema(lenient).startswith("from=ts|auth_id:STRING")  # no ahead rule: not judged
    columns = [c.model_copy(update={"coerce": c.name == "amount_cents"}) for c in source.columns]
    assert "|amount_cents:BIGINT:coerce|" in event_schema(source.model_copy(update={"columns": columns}))


def test_durations_become_intervals_without_overflow() -> None:
    assert interval("5s") == "INTERVAL '0 00:00:05.000' DAY(3) TO SECOND(3)"
    assert interval("500ms") == "INTERVAL '0 00:00:00.500' DAY(3) TO SECOND(3)"
    assert interval("2h") == "INTERVAL '0 02:00:00.000' DAY(3) TO SECOND(3)"
    assert interval("400d") == "INTERVAL '400 00:00:00.000' DAY(3) TO SECOND(3)"


def test_the_sql_reads_only_valid_events_and_broken_ones_get_a_reason() -> None:
    checked, valid = job("daily_spend").setup[3:5]
    assert checked.startswith(
        "CREATE TEMPORARY VIEW `kappa_checked_authorizations` AS\n"
        "SELECT r.`payload_bytes`, r.`payload`, r.`kafka_partition`, r.`kafka_offset`, t.`kappa_reason`, "
        "t.`kappa_v_auth_id` AS `auth_id`,"
    )
    assert checked.endswith(
        "r.`event_time`, CAST(NULL AS TIMESTAMP_LTZ(3)) AS `kappa_watermark`\n"
        "FROM `kafka_authorizations` AS r\n"
        f"CROSS JOIN UNNEST(ARRAY[KAPPA_PARSE(r.`payload_bytes`, r.`kafka_timestamp`, '{SCHEMA}')]) "
        "AS t(`kappa_reason`, `kappa_v_auth_id`, `kappa_v_account`, `kappa_v_merchant`, "
        "`kappa_v_amount_cents`, `kappa_v_status`, `kappa_v_ts`)"
    )
    assert valid == (
        "CREATE TEMPORARY VIEW `authorizations` AS\n"
        "SELECT `auth_id`, `account`, `merchant`, `amount_cents`, `status`, `ts`, `event_time` "
        "FROM `kappa_checked_authorizations` WHERE `kappa_reason` IS NULL"
    )


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
    # grouped by the sink's own key: Flink sends no UPDATE_BEFORE, so the JDBC sink never deletes
    assert counter.endswith(
        "FROM (SELECT *, CONCAT(CAST('daily_spend|3|payments.authorizations|' AS STRING), "
        "CAST(`kafka_partition` AS STRING)) AS `counter_key` FROM `kappa_checked_authorizations`) "
        "GROUP BY `counter_key`"
    )
    assert "PRIMARY KEY (`counter_key`) NOT ENFORCED" in counts


def test_a_job_with_operators_that_drop_late_records_dead_letters_them_first() -> None:
    # daily_spend has no such operator: nothing is routed, nothing changes
    assert "CURRENT_WATERMARK" not in "\n".join(job("daily_spend").setup)
    built = job("merchant_risk")  # GROUP BY TUMBLE(event_time, ...)
    checked = next(s for s in built.setup if s.startswith("CREATE TEMPORARY VIEW `kappa_checked_"))
    reason = "late: event time behind the watermark on arrival"
    assert (
        "CASE WHEN t.`kappa_reason` IS NULL AND r.`event_time` <= CURRENT_WATERMARK(r.`event_time`) "
        f"THEN CAST('{reason}' AS STRING) ELSE t.`kappa_reason` END AS `kappa_reason`"
    ) in checked
    assert "CURRENT_WATERMARK(r.`event_time`) AS `kappa_watermark`" in checked
    _, letters, counter = built.inserts
    is_late = f"`kappa_reason` = CAST('{reason}' AS STRING)"
    assert f"CASE WHEN {is_late} THEN CAST(`kappa_watermark` AS STRING) END" in letters
    assert f"CAST(SUM(CASE WHEN {is_late} THEN 1 ELSE 0 END) AS BIGINT)" in counter
    # with allowed lateness, a record is late once the watermark is that far past it
    lenient = job("merchant_risk", allowed_lateness="1h")
    checked = next(s for s in lenient.setup if s.startswith("CREATE TEMPORARY VIEW `kappa_checked_"))
    assert (
        "r.`event_time` <= CURRENT_WATERMARK(r.`event_time`) - INTERVAL '0 01:00:00.000' DAY(3) TO SECOND(3) "
        "THEN CAST('late: event time behind the watermark less allowed_lateness 1h on arrival' AS STRING)"
    ) in checked
    # mini-batch's processing-time assigner would hand CURRENT_WATERMARK the wall clock
    assert built.configuration["table.exec.mini-batch.enabled"] == "false"
    assert "table.exec.mini-batch.allow-latency" not in built.configuration


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
        "CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS KAPPA_PARSE",
        "CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS KAPPA_EVENT_MILLIS",
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
    assert "WATERMARK" not in setup[2]
