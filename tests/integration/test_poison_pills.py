"""No poison pills: events of 0.9, 1 and several MB, valid or broken, never stop a
pipeline. Broken ones become bounded dead letters (a prefix of the payload with its
size and SHA-256), so a letter always fits a Kafka message.

Found by a new user: a ~1 MB broken event was dead-lettered with its payload escaped
into a 1,137,539-byte letter, over Kafka's 1 MiB limit; the job failed writing it, and
again after every restart, while status said "in sync".
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, materialize
from sqlalchemy import text

from kappa_orch import pipeline_assets
from kappa_orch.dagster.assets import alias_key, version_key
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.engine.flink.sources import LETTER_PAYLOAD_CHARS
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack.config import StackConfig
from tests.integration import scale
from tests.integration.platform import Platform, isolated_platform, resources_for

pytestmark = pytest.mark.integration

MB = 1_000_000
TOPIC_LIMIT = 8 * 1024 * 1024


@pytest.fixture
def platform(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> Iterator[Platform]:
    with isolated_platform(
        stack,
        kafka,
        flink,
        tmp_path,
        only=["daily_spend"],
        topic_config={"max.message.bytes": str(TOPIC_LIMIT)},
    ) as isolated:
        yield isolated


def _event(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "auth_id": f"big-{i}",
        "account": f"acct-{i % 7}",
        "merchant": "m-001",
        "amount_cents": 100 + i,
        "status": "approved",
        "ts": scale.START_MS + i * 1000,
        **extra,
    }


def test_large_events_never_stop_the_pipeline(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource
) -> None:
    topic = platform.topic("payments.authorizations")
    valid = [_event(i) for i in range(300)]
    valid.append(_event(300, note="x" * (3 * MB)))  # valid, 3 MB: an undeclared field
    broken: list[bytes] = [
        b"not json " + b"y" * int(0.9 * MB),  # 0.9 MB, not JSON
        json.dumps(_event(301, amount_cents="12x", note="z" * (MB - 200))).encode(),  # ~1 MB
        # 5 MB of control characters: each one escaped as \u00XX would make a 30 MB letter
        json.dumps(
            {k: v for k, v in _event(302, note="\u0001" * (5 * MB // 6)).items() if k != "merchant"}
        ).encode(),
        b'{"account": "acct-\xff\xfe", "pad": "' + b"w" * (2 * MB) + b'"}',  # 2 MB, not UTF-8
    ]
    values: list[bytes] = [json.dumps(v).encode() for v in valid] + broken
    kafka.produce(topic, values, partition=0, max_message_bytes=TOPIC_LIMIT)

    pipeline = platform.pipelines()["daily_spend"]
    run = materialize(
        pipeline_assets([pipeline]),
        selection=[version_key(pipeline.spec), alias_key(pipeline.spec)],
        resources=resources_for(kafka, flink, platform.warehouse),
        instance=DagsterInstance.ephemeral(),
    )
    assert run.success
    with platform.warehouse.connect() as conn:
        rows = conn.execute(text("SELECT sum(authorizations) FROM analytics.daily_spend")).scalar_one()
        [job_id] = conn.execute(text("SELECT flink_job_id FROM kappa_registry.versions")).scalars()
    assert rows == len(valid)
    assert flink.job_state(job_id) == "RUNNING"

    letters = kafka.consume(platform.dead_letter_topic("daily_spend"), max_records=len(broken), timeout_s=30)
    assert len(letters) == len(broken)
    by_offset = {json.loads(r.value)["source_offset"]: (r, json.loads(r.value)) for r in letters}  # type: ignore[arg-type]
    for offset, original in enumerate(broken, start=len(valid)):
        record, letter = by_offset[offset]
        assert len(record.value or b"") < 1024 * 1024  # fits Kafka's default message size
        assert letter["payload_size"] == len(original)
        assert letter["payload_sha256"] == hashlib.sha256(original).hexdigest()
        assert letter["payload_truncated"] is True
        if letter["payload_encoding"] == "base64":
            assert letter["reason"] == "payload is not valid UTF-8"
            assert base64.b64decode(letter["payload"]) == original[: len(base64.b64decode(letter["payload"]))]
            assert len(letter["payload"]) == LETTER_PAYLOAD_CHARS
        else:
            assert letter["payload"] == original.decode()[:LETTER_PAYLOAD_CHARS]
    assert by_offset[len(valid)][1]["reason"] == "not a JSON object"
    assert by_offset[len(valid) + 1][1]["reason"] == "field amount_cents is a JSON string, declared BIGINT"
    assert by_offset[len(valid) + 2][1]["reason"] == "field merchant is missing"
    # and the job keeps running past them (no restart loop)
    time.sleep(6)
    assert flink.job_state(job_id) == "RUNNING"
    assert flink.job_exception(job_id) is None
