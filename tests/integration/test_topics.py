"""`kappa-orch topics [--create]` on the real broker: missing topics are created with the
spec's partitions and retention; a topic that keeps too little history is a problem, and
`plan` warns about it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack.config import StackConfig

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
KO = str(Path(sys.executable).parent / "kappa-orch")


def _cli(stack: StackConfig, specs: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAPPA_")}
    env.update(stack.platform(specs=specs).environment())
    return subprocess.run([KO, *args], env=env, capture_output=True, text=True, timeout=180)


def test_topics_are_created_as_the_specs_declare_and_checked(
    stack: StackConfig, kafka: KafkaResource, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    raw = yaml.safe_load((ROOT / "assets" / "daily_spend.yaml").read_text())
    topic = f"it.{suffix}.payments.authorizations"
    raw["sources"][0].update(
        {"topic": topic, "partitions": 4, "retention": "400d", "max_message_bytes": 6_000_000}
    )
    raw["dead_letters"] = {"topic": f"it.{suffix}.dead-letters"}
    (tmp_path / "daily_spend.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    (tmp_path / "daily_spend.sql").write_text((ROOT / "assets" / "daily_spend.sql").read_text())
    try:
        missing = _cli(stack, tmp_path, "topics")
        assert missing.returncode == 1
        assert f"{topic}: does not exist (read by daily_spend)" in missing.stderr
        assert "kappa-orch topics --create" in missing.stderr

        created = _cli(stack, tmp_path, "topics", "--create")
        assert created.returncode == 0, created.stdout + created.stderr
        info = kafka.describe_topic(topic)
        assert info.partitions == 4
        assert int(info.config["retention.ms"]) == 400 * 86_400_000
        assert int(info.config["max.message.bytes"]) == 6_000_000  # the declared largest event
        assert "events up to 6,000,000 bytes" in created.stdout + created.stderr
        assert _cli(stack, tmp_path, "topics").returncode == 0
        # a 5 MB event goes in (the broker's default limit is 1 MiB)
        assert kafka.produce(topic, [b"x" * 5_000_000], max_message_bytes=6_000_000) == 1

        # the spec now wants more than the broker keeps: a problem with its fix, and plan warns
        raw["sources"][0]["retention"] = "forever"
        raw["sources"][0]["partitions"] = 6
        raw["sources"][0]["max_message_bytes"] = 8_000_000
        (tmp_path / "daily_spend.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        short = _cli(stack, tmp_path, "topics")
        assert short.returncode == 1
        assert f"{topic}: 4 partition(s), the spec declares 6" in short.stderr
        assert f"{topic}: retention 400d, the spec declares unlimited" in short.stderr
        assert "--add-config retention.ms=-1" in short.stderr
        assert (
            f"{topic}: takes events up to 6,000,000 bytes (max.message.bytes), the spec declares 8,000,000"
            in (short.stderr)
        )
        assert "--add-config max.message.bytes=8000000" in short.stderr
        plan = _cli(stack, tmp_path, "plan")
        assert f"WARNING: {topic}: retention 400d" in plan.stdout + plan.stderr
    finally:
        if topic in kafka.list_topics():
            kafka.delete_topic(topic)
