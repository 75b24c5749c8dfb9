"""Where the local stack lives and which ports it binds: one immutable value.

The CLI builds it from flags and environment variables; nothing here reads the
environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kappa_orch.config import (
    FLINK_TLS_CA,
    FLINK_TLS_CERT,
    JOB_KEY_FILE,
    LOCAL_ROLES,
    PASSWORDS_DIR,
    PlatformConfig,
    local_url,
)

LOOPBACK = "127.0.0.1"
# the node counts the last `kappa-orch stack up` started, in the stack's folder
TOPOLOGY = "topology.json"


def _recorded(home: Path) -> dict[str, Any]:
    """What the last `stack up` in `home` recorded (empty when nothing readable was)."""
    import json

    try:
        recorded = json.loads((home / TOPOLOGY).read_text())
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def recorded_topology(home: Path) -> tuple[int, int]:
    """(Kafka nodes, TaskManagers) the last `stack up` recorded in `home`, else one of each."""
    recorded = _recorded(home)
    try:
        return int(recorded["kafka_brokers"]), int(recorded["taskmanagers"])
    except (KeyError, TypeError, ValueError):
        return 1, 1


STORAGE = ("checkpoint_uri", "savepoint_uri", "s3_endpoint")


def recorded_ha(home: Path) -> bool:
    """Whether the last `stack up` in `home` started the cluster with HA (`--ha`)."""
    return bool(_recorded(home).get("ha"))


def recorded_storage(home: Path) -> tuple[str | None, str | None, str | None]:
    """Where the last `stack up` in `home` told Flink to keep checkpoints and savepoints:
    StackConfig's (checkpoint_uri, savepoint_uri, s3_endpoint); None: the default."""
    recorded = _recorded(home)
    checkpoints, savepoints, endpoint = (recorded.get(key) for key in STORAGE)
    return checkpoints, savepoints, endpoint


# the stack's ports, by the variable that sets each (as `kappa-orch stack` reads them)
PORT_VARIABLES = {
    "kafka_port": "KAPPA_KAFKA_PORT",
    "kafka_controller_port": "KAPPA_KAFKA_CONTROLLER_PORT",
    "flink_rest_port": "KAPPA_FLINK_REST_PORT",
    "flink_rpc_port": "KAPPA_FLINK_RPC_PORT",
    "sql_gateway_port": "KAPPA_SQL_GATEWAY_PORT",
    "postgres_port": "KAPPA_POSTGRES_PORT",
    "zookeeper_port": "KAPPA_ZOOKEEPER_PORT",
}


@dataclass(frozen=True)
class StackConfig:
    """Folders and ports of the local Kafka, Flink and PostgreSQL services."""

    home: Path
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    flink_rest_port: int = 8081
    flink_rpc_port: int = 6123
    sql_gateway_port: int = 8083
    postgres_port: int = 5432
    warehouse_db: str = "warehouse"
    kafka_heap: str = "512m"
    # a pipeline holds a slot per running version: its live one, the replaced ones kept for
    # rollback until retired, a candidate catching up (the reference platform: up to 12;
    # five parallel test workers run theirs side by side)
    taskmanager_slots: int = 24
    start_timeout_s: float = 90.0
    # a multi-node stack: KRaft nodes (each broker and controller; node i binds
    # kafka_port + 2(i-1) and kafka_controller_port + 2(i-1)) and TaskManagers
    kafka_brokers: int = 1
    taskmanagers: int = 1
    # where Flink keeps checkpoints and savepoints (any URI it writes to: file://, s3://);
    # None: folders under the stack's flink/. s3_endpoint: an S3-compatible store's URL
    # (path-style access); its credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
    checkpoint_uri: str | None = None
    savepoint_uri: str | None = None
    s3_endpoint: str | None = None
    # high availability (`stack up --ha`): a ZooKeeper beside the JobManager, which then
    # recovers its jobs itself after a crash (kappa_orch.stack.zookeeper)
    ha: bool = False
    zookeeper_port: int = 2181

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], default_home: Path) -> StackConfig:
        """The stack the environment names, as `kappa-orch stack ...` reads it: KAPPA_HOME
        (else `default_home`), the KAPPA_*_PORT variables, and the topology and storage the
        last `stack up` recorded in its folder (what a benchmark or a test runs against)."""
        home = Path(environ.get("KAPPA_HOME") or default_home).resolve()
        brokers, taskmanagers = recorded_topology(home)
        checkpoints, savepoints, endpoint = recorded_storage(home)
        ports: dict[str, Any] = {
            name: int(environ[variable]) for name, variable in PORT_VARIABLES.items() if environ.get(variable)
        }
        recorded = cls(
            home=home,
            kafka_brokers=brokers,
            taskmanagers=taskmanagers,
            checkpoint_uri=checkpoints,
            savepoint_uri=savepoints,
            s3_endpoint=endpoint,
            ha=recorded_ha(home),
        )
        return replace(recorded, **ports)

    @property
    def ha_storage(self) -> str:
        """Flink's high-availability.storageDir: beside the checkpoints (the same store)."""
        return self.checkpoints.rstrip("/") + "/_ha"

    @property
    def checkpoints(self) -> str:
        """Flink's execution.checkpointing.dir."""
        return self.checkpoint_uri or (self.flink_dir / "checkpoints").resolve().as_uri()

    @property
    def savepoints(self) -> str:
        """Flink's execution.checkpointing.savepoint-dir."""
        return self.savepoint_uri or (self.flink_dir / "savepoints").resolve().as_uri()

    @property
    def on_s3(self) -> bool:
        """Checkpoints or savepoints go to an S3 store (Flink needs its S3 plugin)."""
        return any(uri.startswith(("s3://", "s3a://")) for uri in (self.checkpoints, self.savepoints))

    def kafka_node_ports(self) -> list[tuple[int, int, int]]:
        """(node id, broker port, controller port) of every Kafka node."""
        return [
            (i, self.kafka_port + 2 * (i - 1), self.kafka_controller_port + 2 * (i - 1))
            for i in range(1, self.kafka_brokers + 1)
        ]

    @property
    def jars_dir(self) -> Path:
        return self.home / "jars"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def pids_dir(self) -> Path:
        return self.home / "pids"

    @property
    def kafka_dir(self) -> Path:
        return self.home / "kafka"

    @property
    def flink_dir(self) -> Path:
        return self.home / "flink"

    @property
    def job_key_file(self) -> Path:
        """The key job roles' passwords are derived from (see stack.flink.job_key)."""
        return self.home / JOB_KEY_FILE

    @property
    def postgres_dir(self) -> Path:
        return self.home / "postgres"

    @property
    def kafka_bootstrap(self) -> str:
        """Every broker: a client still bootstraps with one of them down."""
        return ",".join(f"{LOOPBACK}:{port}" for _, port, _ in self.kafka_node_ports())

    @property
    def flink_rest_url(self) -> str:
        return f"https://{LOOPBACK}:{self.flink_rest_port}"

    @property
    def sql_gateway_url(self) -> str:
        return f"https://{LOOPBACK}:{self.sql_gateway_port}"

    @property
    def flink_tls_ca(self) -> Path:
        """The certificate Flink's endpoints present (kappa_orch.stack.flink_security)."""
        return self.home / PASSWORDS_DIR / FLINK_TLS_CA

    @property
    def flink_tls_cert(self) -> Path:
        """The client certificate and key Flink's endpoints ask for (the stack owner's alone)."""
        return self.home / PASSWORDS_DIR / FLINK_TLS_CERT

    # the orchestrator's role (registry, version tables, views); not a superuser
    warehouse_user = LOCAL_ROLES["orchestrator"]
    # the role of the gate and scheduled checks: read-only
    warehouse_reader_user = LOCAL_ROLES["reader"]
    # the role of Flink's JDBC sinks: writes the tables granted to it, nothing else
    warehouse_sink_user = LOCAL_ROLES["sink"]

    def password_file(self, role: str) -> Path:
        """Where the password of one of the stack's roles (orchestrator, reader, sink) is
        kept: made at the first `stack up`, readable by the stack's owner only; a team that
        sets its own writes it there and runs `stack up` again."""
        return self.home / PASSWORDS_DIR / LOCAL_ROLES[role]

    @property
    def warehouse_url(self) -> str:
        return self.warehouse_url_of(self.warehouse_db)

    def warehouse_url_of(self, database: str, role: str = "orchestrator") -> str:
        """The URL of one of the stack's roles (orchestrator, reader, sink) on a database."""
        return local_url(self.home, role, port=self.postgres_port, database=database)

    @property
    def warehouse_reader_url(self) -> str:
        return self.warehouse_url_of(self.warehouse_db, "reader")

    @property
    def warehouse_sink_url(self) -> str:
        return self.warehouse_url_of(self.warehouse_db, "sink")

    def platform(self, database: str | None = None, **settings: Any) -> PlatformConfig:
        """The platform configuration of this stack (on `database`, default the warehouse):
        what `kappa-orch stack env` prints, as one value for code that runs kappa_orch on it."""
        database = database or self.warehouse_db
        return PlatformConfig(
            home=self.home,
            kafka_bootstrap=self.kafka_bootstrap,
            flink_rest_url=self.flink_rest_url,
            sql_gateway_url=self.sql_gateway_url,
            flink_tls_ca=self.flink_tls_ca,
            flink_tls_cert=self.flink_tls_cert,
            warehouse_url=self.warehouse_url_of(database),
            warehouse_reader_url=self.warehouse_url_of(database, "reader"),
            warehouse_sink_url=self.warehouse_url_of(database, "sink"),
            **settings,
        )
