"""A Flink standalone session cluster and its SQL Gateway, run from the pyflink wheel.

The wheel holds a whole Flink distribution. Instead of editing site-packages, the
stack builds its own lib/ and opt/ folders (links to the wheel's jars plus the
connector and gateway jars from Maven) and its own conf/config.yaml, and points
Flink's scripts at them with FLINK_LIB_DIR, FLINK_OPT_DIR and FLINK_CONF_DIR.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import requests
import yaml

from kappa_orch.engine.flink.policy import CHECKPOINT_INTERVAL_S, CHECKPOINTS_RETAINED, job_policy
from kappa_orch.errors import StackError
from kappa_orch.stack import zookeeper
from kappa_orch.stack.config import LOOPBACK, StackConfig
from kappa_orch.stack.flink_security import flink_account, flink_tls, give_to, place, relocate
from kappa_orch.stack.jars import FLINK_EXTRAS, FLINK_S3, build_kappa_jar, flink_home, resolve
from kappa_orch.stack.process import PidFile, port_is_open, spawn, wait_until
from kappa_orch.stack.service import Service, ServiceStatus

_GATEWAY_JAR_PREFIX = "flink-sql-gateway-"

# process name -> start script in bin/
_PROCESSES = {
    "flink-jobmanager": "jobmanager.sh",
    "flink-taskmanager": "taskmanager.sh",
    "flink-sql-gateway": "sql-gateway.sh",
}


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


JOB_KEY_VARIABLE = "KAPPA_JOB_KEY"


def job_key(cfg: StackConfig) -> str:
    """The stack's job key (made at its first start, mode 600): the orchestrator derives
    each job role's password from it, and so do the JDBC sinks in Flink's processes
    (KAPPA_JOB_KEY in their environment), so no password is in a job's SQL text."""
    import secrets

    path = cfg.job_key_file
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
    return path.read_text().strip()


def _s3_settings(cfg: StackConfig) -> dict[str, Any]:
    """The S3 plugin's settings for an S3-compatible store (credentials stay in the
    processes' environment: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, never in the file)."""
    if not cfg.on_s3 or not cfg.s3_endpoint:
        return {}
    return {"s3.endpoint": cfg.s3_endpoint, "s3.path.style.access": True}


class FlinkService(Service):
    name = "flink"

    @property
    def _dir(self) -> Path:
        return self.config.flink_dir

    def ports(self) -> list[int]:
        ports = [self.config.flink_rest_port, self.config.flink_rpc_port, self.config.sql_gateway_port]
        return ports + ([self.config.zookeeper_port] if self.config.ha else [])

    def _processes(self) -> dict[str, str]:
        """process name -> start script, in start order (ZooKeeper first with HA on;
        TaskManager 2, 3 ... after the first)."""
        extra = {f"flink-taskmanager-{i}": "taskmanager.sh" for i in range(2, self.config.taskmanagers + 1)}
        names = list(_PROCESSES)
        ordered = [*names[:2], *extra, *names[2:]]
        scripts = {**_PROCESSES, **extra}
        processes = {name: scripts[name] for name in ordered}
        return {zookeeper.PROCESS: "zookeeper.sh", **processes} if self.config.ha else processes

    def pid_files(self) -> dict[str, PidFile]:
        return {process: self.pid_file(process) for process in self._processes()}

    def settings(self) -> dict[str, Any]:
        """The cluster's configuration: the wheel's defaults plus local overrides."""
        cfg = self.config
        defaults = yaml.safe_load((flink_home() / "conf" / "config.yaml").read_text()) or {}
        settings = _flatten(defaults)
        settings.update(
            {
                "jobmanager.bind-host": LOOPBACK,
                "jobmanager.rpc.address": LOOPBACK,
                "jobmanager.rpc.port": cfg.flink_rpc_port,
                "jobmanager.memory.process.size": "1024m",
                "taskmanager.bind-host": LOOPBACK,
                "taskmanager.host": LOOPBACK,
                "taskmanager.numberOfTaskSlots": cfg.taskmanager_slots,
                "taskmanager.memory.process.size": "3072m",
                "taskmanager.rpc.port": "0",
                "taskmanager.data.port": "0",
                "rest.address": LOOPBACK,
                "rest.bind-address": LOOPBACK,
                "rest.port": cfg.flink_rest_port,
                "parallelism.default": 1,
                "state.backend.type": "hashmap",
                # any URI Flink writes to; kappa_orch never lists it (a lost job resumes from
                # the path Flink's REST API or the registry names)
                "execution.checkpointing.dir": cfg.checkpoints,
                "execution.checkpointing.savepoint-dir": cfg.savepoints,
                **job_policy(
                    checkpoint_interval_s=CHECKPOINT_INTERVAL_S, checkpoints_retained=CHECKPOINTS_RETAINED
                ),
                "sql-gateway.endpoint.rest.address": LOOPBACK,
                "sql-gateway.endpoint.rest.bind-address": LOOPBACK,
                "sql-gateway.endpoint.rest.port": cfg.sql_gateway_port,
                "execution.target": "remote",
                **_s3_settings(cfg),
            }
        )
        if cfg.ha:
            settings.update(zookeeper.ha_settings(cfg))
            jaas = zookeeper.jaas_option(self._dir / "conf" / zookeeper.JAAS)
            settings["env.java.opts.all"] = f"{settings.get('env.java.opts.all', '')} {jaas}".strip()
        return settings

    def _prepare(self) -> dict[str, str]:
        """Write conf/, build lib/ and opt/; return the environment for Flink's scripts."""
        home = flink_home()
        extras = self.config.jars_dir / FLINK_EXTRAS.name
        if not (extras / ".resolved").exists():
            raise StackError(
                f"the Flink connector jars are missing from {extras}",
                "run `kappa-orch stack jars` (or `kappa-orch stack up`, which resolves them)",
            )
        account = flink_account()
        copies = relocate(self._dir, home, account)
        tls = flink_tls(self.config, account)
        conf = self._dir / "conf"
        conf.mkdir(mode=0o700, parents=True, exist_ok=True)
        conf.chmod(0o700)  # the stores' password: the Flink account's alone
        config_file = conf / "config.yaml"
        config_file.touch(mode=0o600)
        config_file.write_text(yaml.safe_dump({**self.settings(), **tls.settings()}, sort_keys=True))
        for written in (zookeeper.ZOO_CFG, zookeeper.JAAS):
            (conf / written).unlink(missing_ok=True)
        if self.config.ha:
            zookeeper.write_files(self.config, conf, job_key(self.config))
        for name in ("log4j.properties", "log4j-console.properties", "log4j-session.properties"):
            source = home / "conf" / name
            if source.exists():
                (conf / name).write_text(source.read_text())

        lib, opt, bin_dir = self._dir / "lib", self._dir / "opt", self._dir / "bin"
        for folder in (lib, opt, bin_dir):
            if folder.is_symlink():
                folder.unlink()
            folder.mkdir(parents=True, exist_ok=True)
            for stale in folder.iterdir():
                stale.unlink()
        for script in (home / "bin").iterdir():
            place(script, bin_dir / script.name, copies=copies)
        for jar in (home / "lib").glob("*.jar"):
            place(jar, lib / jar.name, copies=copies)
        for jar in (home / "opt").glob("*.jar"):
            place(jar, opt / jar.name, copies=copies)
        for jar in extras.glob("*.jar"):
            target = opt if jar.name.startswith(_GATEWAY_JAR_PREFIX) else lib
            place(jar, target / jar.name, copies=copies)
        # beside the driver (one class loader): derives a job role's password from the key
        for jar in build_kappa_jar(self.config.jars_dir).glob("*.jar"):
            place(jar, lib / jar.name, copies=copies)
        self._link_plugins(copies)
        for sub in ("checkpoints", "savepoints", "log", "pids", "zookeeper", "plans"):
            (self._dir / sub).mkdir(parents=True, exist_ok=True)
        # compiled plans: the SQL Gateway writes them, kappa_orch reads them (and writes
        # the canonical ones the gateway executes)
        give_to(account, conf, *conf.iterdir(), self._dir / "log", self._dir / "pids", self._dir / "plans")
        give_to(account, self._dir / "zookeeper", recursive=True)
        stored = [
            Path(uri.removeprefix("file://")) for uri in (self.config.checkpoints, self.config.savepoints)
        ]
        give_to(account, *[path for path in stored if path.is_dir()], recursive=True)
        return self._environment()

    def _link_plugins(self, copies: bool) -> None:
        """plugins/: the S3 filesystem (a plugin, with its own class loader) when checkpoints
        or savepoints go to S3; nothing otherwise."""
        plugins = self._dir / "plugins"
        shutil.rmtree(plugins, ignore_errors=True)
        if not self.config.on_s3:
            return
        folder = resolve(FLINK_S3, self.config.jars_dir)
        target = plugins / "s3-fs-hadoop"
        target.mkdir(parents=True)
        for jar in folder.glob("flink-s3-fs-hadoop-*.jar"):
            place(jar, target / jar.name, copies=copies)

    def _environment(self) -> dict[str, str]:
        """The environment of Flink's scripts (conf/, lib/ and opt/ as `_prepare` wrote them)."""
        conf, lib, opt = self._dir / "conf", self._dir / "lib", self._dir / "opt"
        # none of the orchestrator's secrets (its warehouse URLs) reach Flink's processes
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KAPPA_WAREHOUSE", "PG"))}
        env.update(
            {
                "FLINK_CONF_DIR": str(conf.resolve()),
                "FLINK_LIB_DIR": str(lib.resolve()),
                "FLINK_OPT_DIR": str(opt.resolve()),
                "FLINK_PLUGINS_DIR": str((self._dir / "plugins").resolve()),
                # the JDBC sinks derive their job role's password from it (JobPassword)
                JOB_KEY_VARIABLE: job_key(self.config),
                "FLINK_LOG_DIR": str((self._dir / "log").resolve()),
                "FLINK_PID_DIR": str((self._dir / "pids").resolve()),
            }
        )
        return env

    restarts_parts = True

    def start(self) -> None:
        self.start_parts(list(self._processes()))

    def start_parts(self, processes: list[str]) -> None:
        """Start these processes in order: a lone TaskManager rejoins the running
        JobManager (whose jobs restart on it from their checkpoints)."""
        env = self._prepare() if "flink-jobmanager" in processes else self._environment()
        account = flink_account()
        bin_dir = self._dir / "bin"  # the wheel's scripts, as _prepare placed them
        pid_files = self.pid_files()
        checks = {
            zookeeper.PROCESS: lambda: port_is_open(LOOPBACK, self.config.zookeeper_port),
            "flink-jobmanager": self._jobmanager_answers,
            "flink-sql-gateway": self._gateway_answers,
        }
        for process, script in self._processes().items():
            if process not in processes:
                continue
            if script == "taskmanager.sh":
                before = self._taskmanager_ids()
                checks[process] = lambda before=before: self._new_taskmanager(before)  # type: ignore[misc]
            log = self.config.logs_dir / f"{process}.log"
            pid_file = pid_files[process]
            # zookeeper.sh takes the server's id in the quorum (one server: 1)
            args = ["start-foreground", "1"] if process == zookeeper.PROCESS else ["start-foreground"]
            pid = spawn(
                ["bash", str((bin_dir / script).resolve()), *args],
                log=log,
                pid_file=pid_file,
                env=env,
                cwd=self._dir.resolve(),
                user=account,
            )
            wait_until(
                checks[process],
                service=process,
                timeout_s=self.config.start_timeout_s,
                log=log,
                pid=pid,
            )
        if "flink-jobmanager" in processes:
            # TaskManagers that outlived the JobManager register with the new one only
            # once they notice it is gone (heartbeat.timeout, 50 s): ready means all of them
            wait_until(
                self._taskmanagers_registered,
                service=f"{self.config.taskmanagers} TaskManager(s) registering with the JobManager",
                timeout_s=self.config.start_timeout_s,
                log=self.config.logs_dir / "flink-taskmanager.log",
            )

    def _get(self, url: str) -> dict[str, Any] | None:
        try:
            response = requests.get(
                url, timeout=2, verify=str(self.config.flink_tls_ca), cert=str(self.config.flink_tls_cert)
            )
        except (requests.RequestException, OSError):  # OSError: no certificate made yet
            return None
        if response.status_code != 200:
            return None
        body: dict[str, Any] = response.json()
        return body

    def _jobmanager_answers(self) -> bool:
        return self._get(f"{self.config.flink_rest_url}/overview") is not None

    def _taskmanager_ids(self) -> set[str]:
        listing = self._get(f"{self.config.flink_rest_url}/taskmanagers") or {}
        return {str(tm["id"]) for tm in listing.get("taskmanagers", [])}

    def _new_taskmanager(self, before: set[str]) -> bool:
        """A TaskManager that was not registered before has registered (a dead one stays
        listed until its heartbeat times out, so the slot count alone proves nothing)."""
        return bool(self._taskmanager_ids() - before) and self._slots_registered()

    def _taskmanagers_registered(self) -> bool:
        overview = self._get(f"{self.config.flink_rest_url}/overview") or {}
        return int(overview.get("taskmanagers", 0)) >= self.config.taskmanagers

    def _slots_registered(self) -> bool:
        overview = self._get(f"{self.config.flink_rest_url}/overview")
        return bool(overview) and int(overview.get("slots-total", 0)) >= self.config.taskmanager_slots  # type: ignore[union-attr]

    def _gateway_answers(self) -> bool:
        return self._get(f"{self.config.sql_gateway_url}/v1/info") is not None

    def status(self) -> ServiceStatus:
        pids = self.live_pids()
        address = f"{self.config.flink_rest_url} (SQL Gateway {self.config.sql_gateway_url})"
        if not pids:
            return ServiceStatus(self.name, "stopped", address)
        overview = self._get(f"{self.config.flink_rest_url}/overview")
        gateway = self._get(f"{self.config.sql_gateway_url}/v1/info")
        if overview is None or gateway is None or len(pids) < len(self._processes()):
            missing = [p for p in self._processes() if p not in pids]
            return ServiceStatus(
                self.name,
                "unhealthy",
                address,
                pids=pids,
                detail=f"not running: {', '.join(missing) or 'none'}; "
                f"REST {'up' if overview else 'down'}, gateway {'up' if gateway else 'down'}; "
                f"see {self.config.logs_dir}/flink-*.log",
            )
        listing = self._get(f"{self.config.flink_rest_url}/taskmanagers") or {}
        managers = ", ".join(
            f"{str(tm['id'])[:24]} ({tm.get('freeSlots')}/{tm.get('slotsNumber')} free)"
            for tm in listing.get("taskmanagers", [])
        )
        detail = (
            f"{overview.get('taskmanagers')}/{self.config.taskmanagers} taskmanager(s)"
            + (f" [{managers}]" if self.config.taskmanagers > 1 else "")
            + ", "
            f"{overview.get('slots-available')}/{overview.get('slots-total')} slots free, "
            f"{overview.get('jobs-running')} job(s) running"
        )
        registered = int(overview.get("taskmanagers", 0))
        state = "running" if registered >= self.config.taskmanagers else "unhealthy"
        return ServiceStatus(self.name, state, address, overview.get("flink-version"), pids, detail)
