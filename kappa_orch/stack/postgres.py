"""A PostgreSQL server from the system's binaries, its data inside the stack folder.

initdb and postgres refuse to run as root: as root the server runs as the
unprivileged `postgres` account (created by Debian's postgresql package).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import signal
import subprocess
from pathlib import Path

from kappa_orch.errors import StackError
from kappa_orch.stack.config import LOOPBACK
from kappa_orch.stack.process import PidFile, spawn, stop_pid, tail, wait_until
from kappa_orch.stack.service import Service, ServiceStatus

SERVICE_ACCOUNT = "postgres"
_INSTALL_FIX = (
    "install the PostgreSQL server (Debian/Ubuntu: `apt-get install -y postgresql`; "
    "elsewhere your distribution's postgresql server package, or set PATH so that "
    "`initdb` and `postgres` are found), or run scripts/bootstrap.sh"
)


def postgres_bin_dir() -> Path:
    """Folder with initdb and postgres: Debian's newest version, else PATH."""
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if debian:
        return debian[-1].parent
    found = shutil.which("postgres")
    if found and shutil.which("initdb"):
        return Path(found).parent
    raise StackError("the PostgreSQL server binaries (initdb, postgres) were not found", _INSTALL_FIX)


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError as exc:
        raise StackError(
            "running as root, but there is no `postgres` account to run PostgreSQL under "
            "(initdb and postgres refuse to run as root)",
            "create it (`useradd --system --home /var/lib/postgresql postgres`) or install "
            "Debian's postgresql package, which creates it; or run kappa-orch as a normal user",
        ) from exc
    return SERVICE_ACCOUNT


# how long `stack down` lets clients leave by themselves before disconnecting them
SMART_SHUTDOWN_S = 5.0


class PostgresService(Service):
    name = "postgres"
    needs_jars = False

    def ports(self) -> list[int]:
        return [self.config.postgres_port]

    def pid_files(self) -> dict[str, PidFile]:
        return {"postgres": self.pid_file("postgres")}

    def _root(self) -> Path:
        """Where data and socket live: the stack folder, when the account can reach it.

        A clone under a private home (e.g. /root, mode 700) is out of reach of the
        `postgres` account; then the data goes to a folder under /var/tmp named
        after the stack folder, and `status` says so.
        """
        home = self.config.postgres_dir.resolve()
        user = _run_as()
        if user is None or _reachable_by(user, home.parent):
            return home
        digest = hashlib.sha256(str(home).encode()).hexdigest()[:10]
        return Path("/var/tmp") / f"kappa-orch-{digest}" / "postgres"

    def data_dir(self) -> Path:
        return self._root() / "data"

    def _socket_dir(self) -> Path:
        return self._root() / "run"

    def _prepare(self, bin_dir: Path, user: str | None) -> None:
        root = self._root()
        data, sockets = self.data_dir(), self._socket_dir()
        for folder in (root, sockets):
            folder.mkdir(parents=True, exist_ok=True)
            if user:
                shutil.chown(folder, user, user)
        if (data / "PG_VERSION").exists():
            return
        pwfile = root / ".pwfile"
        pwfile.write_text(self.config.warehouse_password + "\n")
        if user:
            shutil.chown(pwfile, user, user)
        pwfile.chmod(0o600)
        proc = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                self.config.warehouse_user,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
            ],
            capture_output=True,
            text=True,
            check=False,
            user=user,
            cwd=str(root),
        )
        pwfile.unlink()
        if proc.returncode != 0:
            shutil.rmtree(data, ignore_errors=True)
            raise StackError(
                f"initdb failed for {data}:\n{(proc.stdout + proc.stderr)[-2000:]}",
                "fix the cause above and run `kappa-orch stack up` again",
            )

    def start(self) -> None:
        bin_dir = postgres_bin_dir()
        user = _run_as()
        self._prepare(bin_dir, user)
        log = self.config.logs_dir / "postgres.log"
        if user:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.touch()
        pid_file = self.pid_files()["postgres"]
        pid = spawn(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(self.data_dir()),
                "-p",
                str(self.config.postgres_port),
                "-h",
                LOOPBACK,
                "-k",
                str(self._socket_dir()),
                "-c",
                "max_connections=200",
                "-c",
                "fsync=on",
            ],
            log=log,
            pid_file=pid_file,
            user=user,
            cwd=self._root(),
        )
        wait_until(
            lambda: self._query("select 1", dbname="postgres") is not None,
            service="PostgreSQL",
            timeout_s=self.config.start_timeout_s,
            log=log,
            pid=pid,
        )
        self._create_warehouse()

    def stop(self) -> bool:
        # SIGTERM is PostgreSQL's smart shutdown: new connections are refused and the
        # server stops when its clients have left. Flink's sinks never leave by
        # themselves, so after the grace SIGINT, the fast shutdown: clients are
        # disconnected, open transactions roll back, the server checkpoints and stops.
        return stop_pid(
            self.pid_files()["postgres"], sig=signal.SIGINT, grace=(signal.SIGTERM, SMART_SHUTDOWN_S)
        )

    def _connect(self, dbname: str):  # type: ignore[no-untyped-def]
        import psycopg2

        return psycopg2.connect(
            host=LOOPBACK,
            port=self.config.postgres_port,
            user=self.config.warehouse_user,
            password=self.config.warehouse_password,
            dbname=dbname,
            connect_timeout=2,
        )

    def _query(self, sql: str, *, dbname: str) -> tuple[object, ...] | None:
        try:
            conn = self._connect(dbname)
        except Exception:
            return None
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                row: tuple[object, ...] | None = cur.fetchone()
                return row
        finally:
            conn.close()

    def _create_warehouse(self) -> None:
        name = self.config.warehouse_db
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise StackError(
                f"warehouse database name {name!r} is not a plain lower-case identifier",
                "choose a name matching [a-z_][a-z0-9_]* with --warehouse-db",
            )
        conn = self._connect("postgres")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("select 1 from pg_database where datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f'create database "{name}"')
        finally:
            conn.close()

    def status(self) -> ServiceStatus:
        pids = self.live_pids()
        address = f"{LOOPBACK}:{self.config.postgres_port}/{self.config.warehouse_db}"
        if not pids:
            return ServiceStatus(self.name, "stopped", address)
        row = self._query("show server_version", dbname=self.config.warehouse_db)
        if row is None:
            return ServiceStatus(
                self.name,
                "unhealthy",
                address,
                pids=pids,
                detail=tail(self.config.logs_dir / "postgres.log", 5),
            )
        return ServiceStatus(self.name, "running", address, str(row[0]), pids, f"data: {self.data_dir()}")


def _reachable_by(user: str, folder: Path) -> bool:
    """True when `user` can enter `folder` (every ancestor must be traversable)."""
    return subprocess.run(["test", "-x", str(folder)], user=user, check=False).returncode == 0
