"""A single-node Kafka (KRaft, broker + controller) on the loopback address."""

from __future__ import annotations

import base64
import subprocess
import uuid
from pathlib import Path

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
    name = "kafka"

    @property
    def _dir(self) -> Path:
        return self.config.kafka_dir

    def ports(self) -> list[int]:
        return [self.config.kafka_port, self.config.kafka_controller_port]

    def pid_files(self) -> dict[str, PidFile]:
        return {"kafka": self.pid_file("kafka")}

    def _classpath(self) -> str:
        jars = self.config.jars_dir / KAFKA_BROKER.name
        if not (jars / ".resolved").exists():
            raise StackError(
                f"the Kafka broker jars are missing from {jars}",
                "run `kappa-orch stack jars` (or `kappa-orch stack up`, which resolves them)",
            )
        return f"{jars}/*"

    def _write_config(self) -> Path:
        cfg = self.config
        data = self._dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        props = self._dir / "server.properties"
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers={LOOPBACK}:{cfg.kafka_controller_port}",
                    f"listeners=PLAINTEXT://{LOOPBACK}:{cfg.kafka_port},"
                    f"CONTROLLER://{LOOPBACK}:{cfg.kafka_controller_port}",
                    f"advertised.listeners=PLAINTEXT://{LOOPBACK}:{cfg.kafka_port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={data}",
                    "num.partitions=1",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    "",
                ]
            )
        )
        (self._dir / "log4j2.properties").write_text(_LOG4J)
        return props

    def _format_once(self, props: Path) -> None:
        if (self._dir / "data" / "meta.properties").exists():
            return
        cluster_id_file = self._dir / "cluster.id"
        if not cluster_id_file.exists():
            cluster_id_file.write_text(_new_cluster_id() + "\n")
        cluster_id = cluster_id_file.read_text().strip()
        java = require_tool("java", "openjdk-17-jre-headless")
        proc = subprocess.run(
            [
                java,
                "-cp",
                self._classpath(),
                f"-Dlog4j2.configurationFile={self._dir / 'log4j2.properties'}",
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                cluster_id,
                "-c",
                str(props),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise StackError(
                f"formatting Kafka storage in {self._dir / 'data'} failed:\n"
                f"{(proc.stdout + proc.stderr)[-2000:]}",
                f"remove {self._dir} to start from empty storage, then run `stack up` again",
            )

    def start(self) -> None:
        classpath = self._classpath()
        props = self._write_config()
        self._format_once(props)
        java = require_tool("java", "openjdk-17-jre-headless")
        log = self.config.logs_dir / "kafka.log"
        pid_file = self.pid_files()["kafka"]
        pid = spawn(
            [
                java,
                f"-Xms{self.config.kafka_heap}",
                f"-Xmx{self.config.kafka_heap}",
                f"-Dlog4j2.configurationFile={self._dir / 'log4j2.properties'}",
                "-cp",
                classpath,
                "kafka.Kafka",
                str(props),
            ],
            log=log,
            pid_file=pid_file,
        )
        wait_until(
            self._answers,
            service="Kafka",
            timeout_s=self.config.start_timeout_s,
            log=log,
            pid=pid,
        )

    def _answers(self) -> bool:
        from confluent_kafka.admin import AdminClient

        if not port_is_open(LOOPBACK, self.config.kafka_port):
            return False
        admin = AdminClient(
            {"bootstrap.servers": self.config.kafka_bootstrap, "socket.timeout.ms": 2000, "log_level": 0}
        )
        try:
            metadata = admin.list_topics(timeout=2)
        except Exception:
            return False
        return bool(metadata.brokers)

    def status(self) -> ServiceStatus:
        pids = self.live_pids()
        address = self.config.kafka_bootstrap
        version = _jar_version(self.config.jars_dir / KAFKA_BROKER.name, "kafka_2.13-")
        if not pids:
            return ServiceStatus(self.name, "stopped", address, version)
        if self._answers():
            return ServiceStatus(self.name, "running", address, version, pids)
        return ServiceStatus(
            self.name, "unhealthy", address, version, pids, tail(self.config.logs_dir / "kafka.log", 5)
        )


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
