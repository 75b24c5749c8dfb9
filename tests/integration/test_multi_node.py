"""A multi-node local stack (issue 15, point 1): `kappa-orch stack up --brokers 3
--taskmanagers 2` starts three KRaft nodes and two TaskManagers beside the test stack
(other ports, its own folder); topics kappa_orch creates get replication factor 3 and
min.insync.replicas 2; `status` shows every node; a partition leader killed with -9
loses no acknowledged record and the cluster keeps taking writes; a killed TaskManager
is reported and `stack up` brings back exactly the dead processes; `stack down` stops
everything it started."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from kappa_orch.errors import KappaError
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack.config import StackConfig
from kappa_orch.stack.postgres import PostgresService
from kappa_orch.stack.process import PidFile, pid_alive
from tests.integration.platform import KAPPA

pytestmark = pytest.mark.integration

PORTS = {
    "--kafka-port": 29092,
    "--kafka-controller-port": 29093,
    "--flink-rest-port": 28081,
    "--flink-rpc-port": 26123,
    "--sql-gateway-port": 28083,
    "--postgres-port": 25432,
}
BOOTSTRAP = "127.0.0.1:29092,127.0.0.1:29094,127.0.0.1:29096"


def run(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    flags = [item for flag, port in PORTS.items() for item in (flag, str(port))]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAPPA_")}
    done = subprocess.run(
        [KAPPA, "stack", "--home", str(home), *flags, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def cluster(stack: StackConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("multi-node")
    (home / "jars").symlink_to(stack.jars_dir)  # the jars the test stack resolved
    try:
        run(home, "up", "--brokers", "3", "--taskmanagers", "2")
        yield home
    finally:
        run(home, "down", check=False)
        # a private temporary folder: PostgreSQL's data and Flink's folder went to /var/tmp
        placed = [PostgresService(StackConfig(home=home))._root()]
        placed += [(home / "flink").resolve()] if (home / "flink").is_symlink() else []
        for folder in placed:
            if folder.parent.name.startswith("kappa-orch-") and folder.parent.parent == Path("/var/tmp"):
                shutil.rmtree(folder.parent, ignore_errors=True)


def statuses(home: Path) -> dict[str, dict]:
    done = run(home, "status", "--json", check=False)
    return {s["name"]: s for s in json.loads(done.stdout)}


def _pid(home: Path, process: str) -> int:
    pid = PidFile(home / "pids" / f"{process}.pid", str(home)).live_pid()
    assert pid is not None, f"{process} is not running"
    return pid


def _leader(topic: str) -> int:
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    return admin.list_topics(topic, timeout=10).topics[topic].partitions[0].leader


def _produce(topic: str, start: int, count: int) -> None:
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "acks": "all", "enable.idempotence": True})
    failed: list[str] = []
    for i in range(start, start + count):
        producer.produce(
            topic,
            key=str(i % 7),
            value=str(i),
            on_delivery=lambda e, _m: failed.append(str(e)) if e else None,
        )
        producer.poll(0)
    assert producer.flush(60) == 0 and failed == []


def test_three_brokers_replicate_and_survive_a_killed_leader(cluster: Path) -> None:
    seen = statuses(cluster)
    assert seen["kafka"]["state"] == "running" and seen["kafka"]["address"] == BOOTSTRAP
    assert "3/3 broker(s)" in seen["kafka"]["detail"] and seen["kafka"]["detail"].count(" up ") == 3
    kafka = KafkaResource(bootstrap_servers=BOOTSTRAP)
    assert kafka.create_topic(
        "multi.events", partitions=3
    )  # the brokers' defaults, as kappa_orch creates topics
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    partitions = admin.list_topics("multi.events", timeout=10).topics["multi.events"].partitions
    assert all(len(p.replicas) == 3 and len(p.isrs) == 3 for p in partitions.values())
    [config] = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "multi.events")]).values()
    assert config.result(timeout=10)["min.insync.replicas"].value == "2"
    _produce("multi.events", 0, 5_000)
    leader = _leader("multi.events")
    os.kill(_pid(cluster, f"kafka-{leader}"), signal.SIGKILL)
    # offsets are read through the failover (found: a reprocess's catch-up failed with
    # NOT_LEADER_FOR_PARTITION reading watermarks right after the leader died)
    assert sum(high for _low, high in kafka.watermarks("multi.events").values()) == 5_000
    assert kafka.consumer_lag("kappa-multi-node-test", "multi.events") == kafka.end_offsets("multi.events")
    _produce("multi.events", 5_000, 5_000)  # acks=all with two replicas in sync: taken
    assert _leader("multi.events") != leader
    down = statuses(cluster)["kafka"]
    assert (
        down["state"] == "unhealthy"
        and f"node {leader} " in down["detail"]
        and "(not running)" in down["detail"]
    )
    restarted = run(cluster, "up")  # no flags: the recorded topology; only the dead node starts
    assert f"kafka-{leader} not running; starting only that" in restarted.stderr
    values = sorted(int(r.value) for r in kafka.read("multi.events", {}, max_records=20_000))
    assert values == list(range(10_000))  # every acknowledged record, once
    assert statuses(cluster)["kafka"]["state"] == "running"


def test_two_taskmanagers_and_a_killed_one_comes_back(cluster: Path) -> None:
    flink = statuses(cluster)["flink"]
    assert flink["state"] == "running" and "2/2 taskmanager(s)" in flink["detail"]
    assert flink["detail"].count("free)") == 2  # each TaskManager listed with its slots
    os.kill(_pid(cluster, "flink-taskmanager-2"), signal.SIGKILL)
    restarted = run(cluster, "up")
    assert "flink-taskmanager-2 not running; starting only that" in restarted.stderr
    # the killed one stays listed until its heartbeat times out (Flink's 50 s): then two again
    deadline = time.monotonic() + 180
    while "2/2 taskmanager(s)" not in (detail := statuses(cluster)["flink"]["detail"]):
        assert time.monotonic() < deadline, detail
        time.sleep(5)


def test_brokers_that_do_not_come_back_are_named_with_the_fix(cluster: Path) -> None:
    # issue 15, bad input: two of three nodes gone for good (the quorum's majority): the
    # status names them, what the cluster can still do and the fix; a write is refused
    # with one clear error
    for node in (2, 3):
        os.kill(_pid(cluster, f"kafka-{node}"), signal.SIGKILL)
    down = statuses(cluster)["kafka"]
    assert down["state"] == "unhealthy"
    assert "2 of 3 node(s) down: the KRaft quorum has lost its majority" in down["detail"]
    assert "fix: `kappa-orch stack up` starts only the dead node(s)" in down["detail"]
    kafka = KafkaResource(bootstrap_servers=BOOTSTRAP, failover_s=10, request_timeout_s=5)
    # one replica left, two must be in sync: nothing is acknowledged, and that is said,
    # without calling the record lost: the one leader may hold it until the others return
    with pytest.raises(KappaError) as refused:
        kafka.produce("multi.events", [b"unconfirmed"])
    assert "1 of 1 records to 'multi.events' were not acknowledged" in refused.value.problem
    assert "may still write some of them" in refused.value.problem
    assert "stack status" in (refused.value.fix or "")
    restarted = run(cluster, "up")
    assert "starting only that" in restarted.stderr
    assert statuses(cluster)["kafka"]["state"] == "running"
    # the cluster takes a while to elect leaders again (found in CI: a 5 s describe timed out)
    again = KafkaResource(bootstrap_servers=BOOTSTRAP)
    deadline = time.monotonic() + 180
    while True:
        try:
            values = [r.value for r in again.read("multi.events", {}, max_records=20_000)]
            break
        except KappaError:
            assert time.monotonic() < deadline, "the restarted cluster did not serve the topic again"
            time.sleep(5)
    # nothing acknowledged was lost or repeated; the unconfirmed record is there at most once
    # (CI saw it written once the replicas returned: Kafka's answer to a timed-out write)
    assert values.count(b"unconfirmed") <= 1
    assert sorted(int(v) for v in values if v != b"unconfirmed") == list(range(10_000))


def test_down_stops_every_node(cluster: Path) -> None:
    pids = [
        _pid(cluster, p)
        for p in ("kafka-1", "kafka-2", "kafka-3", "flink-taskmanager", "flink-taskmanager-2")
    ]
    run(cluster, "down")
    assert [pid for pid in pids if pid_alive(pid)] == []  # exited (a zombie nobody reaped counts)
    assert {s["state"] for s in statuses(cluster).values()} == {"stopped"}
