"""Kafka (KRaft: each node broker and controller) on the loopback address: one node by
default, or a replicated cluster of several (`kappa-orch stack up --brokers 3`)."""

from __future__ import annotations

import base64
import subprocess
import uuid
from pathlib import Path
from typing import Any

from kappa_orch.errors import StackError
from kappa_orch.stack.config import LOOPBACK
from kappa_orch.stack.jars import KAFKA_BROKER, require_tool
from kappa_orch.stack.process import PidFile, port_is_open, spawn, tail, wait_until
from kappa_orch.stack.service import Service, ServiceStatus

_LOG4J = """\
# kappa-orch: the broker logs INFO to stdout, which the stack sends to logs/kafka.log
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.controller.name = state.change.logger
logger.controller.level = WARN
"""


class KafkaService(Service):
    """One KRaft node, or (kafka_brokers > 1) a cluster of nodes that are each broker and
    controller, with replicated defaults: topics at replication factor 3 (at most the
    node count) and min.insync.replicas 2."""

    name = "kafka"

    @property
    def _dir(self) -> Path:
        return self.config.kafka_dir

    @property
    def _multi(self) -> bool:
        return self.config.kafka_brokers > 1

    def _node_dir(self, node: int) -> Path:
        return self._dir / f"node-{node}" if self._multi else self._dir

    def _process(self, node: int) -> str:
        return f"kafka-{node}" if self._multi else "kafka"

    def ports(self) -> list[int]:
        return [
            port for _, broker, controller in self.config.kafka_node_ports() for port in (broker, controller)
        ]

    def pid_files(self) -> dict[str, PidFile]:
        return {
            self._process(n): self.pid_file(self._process(n)) for n, _, _ in self.config.kafka_node_ports()
        }

    def _classpath(self) -> str:
        jars = self.config.jars_dir / KAFKA_BROKER.name
        if not (jars / ".resolved").exists():
            raise StackError(
                f"the Kafka broker jars are missing from {jars}",
                "run `kappa-orch stack jars` (or `kappa-orch stack up`, which resolves them)",
            )
        return f"{jars}/*"

    def _replication(self) -> list[str]:
        replicas = min(3, self.config.kafka_brokers)
        isr = 2 if replicas >= 3 else 1
        return [
            f"default.replication.factor={replicas}",
            f"min.insync.replicas={isr}",
            f"offsets.topic.replication.factor={replicas}",
            f"transaction.state.log.replication.factor={replicas}",
            f"transaction.state.log.min.isr={isr}",
            f"share.coordinator.state.topic.replication.factor={replicas}",
            f"share.coordinator.state.topic.min.isr={isr}",
        ]

    def _write_config(self, node: int, broker: int, controller: int) -> Path:
        folder = self._node_dir(node)
        data = folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        voters = ",".join(f"{n}@{LOOPBACK}:{c}" for n, _, c in self.config.kafka_node_ports())
        quorum = (
            f"controller.quorum.voters={voters}"
            if self._multi
            else f"controller.quorum.bootstrap.servers={LOOPBACK}:{controller}"
        )
        props = folder / "server.properties"
        lines = [
            "process.roles=broker,controller",
            f"node.id={node}",
            quorum,
            f"listeners=PLAINTEXT://{LOOPBACK}:{broker},CONTROLLER://{LOOPBACK}:{controller}",
            f"advertised.listeners=PLAINTEXT://{LOOPBACK}:{broker}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={data}",
            "num.partitions=1",
            *self._replication(),
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "",
        ]
        props.write_text("\n".join(lines))
        (folder / "log4j2.properties").write_text(_LOG4J)
        return props

    def _cluster_id(self) -> str:
        cluster_id_file = self._dir / "cluster.id"
        nodes_file = self._dir / "nodes"
        formatted = int(nodes_file.read_text()) if nodes_file.exists() else None
        if formatted is not None and formatted != self.config.kafka_brokers:
            raise StackError(
                f"the stack's Kafka storage in {self._dir} was formatted for {formatted} node(s), not "
                f"{self.config.kafka_brokers}",
                f"stop the stack and remove {self._dir} to start from empty storage with the new node "
                "count, or start it with the count it has",
            )
        if not cluster_id_file.exists():
            self._dir.mkdir(parents=True, exist_ok=True)
            cluster_id_file.write_text(_new_cluster_id() + "\n")
            nodes_file.write_text(f"{self.config.kafka_brokers}\n")
        return cluster_id_file.read_text().strip()

    def _format_once(self, node: int, props: Path) -> None:
        cluster_id = self._cluster_id()
        folder = self._node_dir(node)
        if (folder / "data" / "meta.properties").exists():
            return
        java = require_tool("java", "openjdk-17-jre-headless")
        command = [
            java,
            "-cp",
            self._classpath(),
            f"-Dlog4j2.configurationFile={folder / 'log4j2.properties'}",
        ]
        command += ["kafka.tools.StorageTool", "format", *([] if self._multi else ["--standalone"])]
        proc = subprocess.run(
            [*command, "-t", cluster_id, "-c", str(props)], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise StackError(
                f"formatting Kafka storage in {folder / 'data'} failed:\n"
                f"{(proc.stdout + proc.stderr)[-2000:]}",
                f"remove {self._dir} to start from empty storage, then run `stack up` again",
            )

    def start(self) -> None:
        self.start_parts(list(self.pid_files()))

    restarts_parts = True

    def start_parts(self, processes: list[str]) -> None:
        """Start these nodes (all of them: the cluster forms once a quorum is up)."""
        java = require_tool("java", "openjdk-17-jre-headless")
        classpath = self._classpath()
        started = {}
        for node, broker, controller in self.config.kafka_node_ports():
            process = self._process(node)
            if process not in processes:
                continue
            props = self._write_config(node, broker, controller)
            self._format_once(node, props)
            folder = self._node_dir(node)
            heap = self.config.kafka_heap
            command = [
                java,
                f"-Xms{heap}",
                f"-Xmx{heap}",
                f"-Dlog4j2.configurationFile={folder / 'log4j2.properties'}",
            ]
            log = self.config.logs_dir / f"{process}.log"
            started[process] = (
                spawn(
                    [*command, "-cp", classpath, "kafka.Kafka", str(props)],
                    log=log,
                    pid_file=self.pid_file(process),
                ),
                log,
            )
        for process, (pid, log) in started.items():
            wait_until(
                self._answers,
                service=f"Kafka ({process})" if self._multi else "Kafka",
                timeout_s=self.config.start_timeout_s,
                log=log,
                pid=pid,
            )

    def _metadata(self) -> Any:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(
            {"bootstrap.servers": self.config.kafka_bootstrap, "socket.timeout.ms": 2000, "log_level": 0}
        )
        try:
            return admin.list_topics(timeout=2)
        except Exception:
            return None

    def _answers(self) -> bool:
        """Every node is a broker of the cluster."""
        if not any(port_is_open(LOOPBACK, port) for _, port, _ in self.config.kafka_node_ports()):
            return False
        metadata = self._metadata()
        return metadata is not None and len(metadata.brokers) >= self.config.kafka_brokers

    def status(self) -> ServiceStatus:
        pids = self.live_pids()
        address = self.config.kafka_bootstrap
        version = _jar_version(self.config.jars_dir / KAFKA_BROKER.name, "kafka_2.13-")
        if not pids:
            return ServiceStatus(self.name, "stopped", address, version)
        metadata = self._metadata()
        brokers = {b.id for b in metadata.brokers.values()} if metadata is not None else set()
        nodes = [
            f"node {n} :{port} {'up' if n in brokers else 'DOWN'}"
            + (f" (pid {pids[self._process(n)]})" if self._process(n) in pids else " (not running)")
            for n, port, _ in self.config.kafka_node_ports()
        ]
        detail = (
            f"{len(brokers)}/{self.config.kafka_brokers} broker(s): " + ", ".join(nodes)
            if self._multi
            else None
        )
        if len(brokers) >= self.config.kafka_brokers and len(pids) == self.config.kafka_brokers:
            return ServiceStatus(self.name, "running", address, version, pids, detail)
        if detail is not None:
            detail += _missing_nodes(self.config.kafka_brokers, len(pids))
        logs = tail(self.config.logs_dir / f"{self._process(1)}.log", 5)
        return ServiceStatus(self.name, "unhealthy", address, version, pids, detail or logs)


def _missing_nodes(nodes: int, running: int) -> str:
    """What a multi-node cluster with dead nodes can still do, and the fix (pure)."""
    down = nodes - running
    if down <= 0:
        return "; a node has not registered yet: wait, then look at its log"
    if running > nodes // 2:
        what = (
            f"; {down} of {nodes} node(s) down: the quorum and the replicas in sync still take "
            "writes (min.insync.replicas 2)"
        )
    else:
        what = (
            f"; {down} of {nodes} node(s) down: the KRaft quorum has lost its majority, so the "
            "cluster takes no writes and serves no new metadata until enough are back"
        )
    return what + "; fix: `kappa-orch stack up` starts only the dead node(s)"


def _new_cluster_id() -> str:
    # Kafka's Uuid string form: url-safe base64 of 16 bytes without padding; one
    # that starts with '-' would be read as a command-line flag
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _jar_version(jars: Path, prefix: str) -> str | None:
    for jar in sorted(jars.glob(f"{prefix}*.jar")):
        return jar.name[len(prefix) : -len(".jar")]
    return None
