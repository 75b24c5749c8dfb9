"""High availability for the local Flink cluster (`stack up --ha`): a ZooKeeper server
beside the JobManager, from the ZooKeeper that Flink's own distribution carries
(flink-dist holds it shaded; `bin/zookeeper.sh` starts it), so nothing more is fetched.

With HA on, a JobManager that dies and is started again recovers its jobs itself (the
same job ids) from ZooKeeper and `high-availability.storageDir`, restoring each from its
latest completed checkpoint; kappa_orch's `repair` then has nothing to do.

The door is closed as Flink's endpoints are: ZooKeeper listens on 127.0.0.1 only, takes
no session that has not authenticated with SASL (DIGEST-MD5, a password derived from
the stack's job key, which only the Flink account reads), and Flink creates its nodes
with the `creator` ACL. Its admin HTTP server is off (it binds 0.0.0.0:8080 otherwise).
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

from kappa_orch.stack.config import LOOPBACK, StackConfig

# flink-dist relocates ZooKeeper under this package: class names in ZooKeeper's
# configuration and in JAAS files must use it
SHADED = "org.apache.flink.shaded.zookeeper3.org.apache.zookeeper"
ZOO_CFG = "zoo.cfg"
JAAS = "jaas.conf"
ZK_USER = "flink"
PROCESS = "flink-zookeeper"


def zookeeper_password(job_key: str) -> str:
    """The Flink processes' ZooKeeper password: derived from the stack's job key (which
    they already hold), so nothing else needs storing and a restart agrees with the
    ZooKeeper that kept running."""
    return hmac.new(job_key.encode(), b"kappa-orch zookeeper", hashlib.sha256).hexdigest()


def zoo_cfg(cfg: StackConfig) -> str:
    """ZooKeeper's configuration: standalone, loopback only, SASL required."""
    lines = {
        "tickTime": 2000,
        "initLimit": 10,
        "syncLimit": 5,
        "dataDir": (cfg.flink_dir / "zookeeper").resolve(),
        "clientPort": cfg.zookeeper_port,
        "clientPortAddress": LOOPBACK,
        "maxClientCnxns": 60,
        # off: it would bind 0.0.0.0:8080
        "admin.enableServer": "false",
        "4lw.commands.whitelist": "",
        # unknown keys become `zookeeper.<key>` system properties
        "authProvider.1": f"{SHADED}.server.auth.SASLAuthenticationProvider",
        "sessionRequireClientSASLAuth": "true",
        "enforce.auth.enabled": "true",
        "enforce.auth.schemes": "sasl",
    }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def jaas(password: str) -> str:
    """The JAAS file of the Flink processes: `Server` for ZooKeeper, `Client` for the
    JobManager, TaskManagers and SQL Gateway."""
    module = f"{SHADED}.server.auth.DigestLoginModule"
    return (
        f'Server {{\n  {module} required\n  user_{ZK_USER}="{password}";\n}};\n'
        f'Client {{\n  {module} required\n  username="{ZK_USER}"\n  password="{password}";\n}};\n'
    )


def write_files(cfg: StackConfig, conf: Path, job_key: str) -> None:
    """zoo.cfg and the JAAS file in Flink's conf/ folder (mode 600)."""
    (cfg.flink_dir / "zookeeper").mkdir(parents=True, exist_ok=True)
    for name, text in ((ZOO_CFG, zoo_cfg(cfg)), (JAAS, jaas(zookeeper_password(job_key)))):
        path = conf / name
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(text)


def ha_settings(cfg: StackConfig) -> dict[str, Any]:
    """Flink's HA configuration with ZooKeeper (SASL through the JAAS file: `jaas_option`)."""
    return {
        "high-availability.type": "zookeeper",
        "high-availability.zookeeper.quorum": f"{LOOPBACK}:{cfg.zookeeper_port}",
        "high-availability.zookeeper.path.root": "/flink",
        "high-availability.cluster-id": "/kappa",
        "high-availability.storageDir": cfg.ha_storage,
        "high-availability.zookeeper.client.acl": "creator",
        "zookeeper.sasl.disable": False,
        "zookeeper.sasl.login-context-name": "Client",
    }


def jaas_option(jaas_file: Path) -> str:
    """The JVM flag that points every Flink process (ZooKeeper too) at the JAAS file."""
    return f"-Djava.security.auth.login.config={jaas_file.resolve()}"
