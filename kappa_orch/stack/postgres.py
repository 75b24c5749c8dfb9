"""A PostgreSQL server from the system's binaries, its data inside the stack folder.

initdb and postgres refuse to run as root: as root the server runs as the
unprivileged `postgres` account (created by Debian's postgresql package).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from kappa_orch.errors import StackError
from kappa_orch.stack.config import LOOPBACK
from kappa_orch.stack.process import PidFile, spawn, stop_pid, tail, wait_until
from kappa_orch.stack.service import Service, ServiceStatus
from kappa_orch.stack.warehouse_roles import provision_database, provision_roles

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


# the superuser, for setting the stack up only; its password is made at the first start
ADMIN_USER = "kappa_admin"
# every connection gives a password (scram), on the socket as on the loopback address
PG_HBA = (
    "# written by kappa-orch stack: passwords (scram-sha-256) everywhere, loopback only\n"
    "local all all scram-sha-256\n"
    "host all all 127.0.0.1/32 scram-sha-256\n"
)


# the orchestrator's password of a data folder from before the roles (it was the superuser)
LEGACY_PASSWORD = "kappa"
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
        sockets.chmod(0o700)  # the socket is the server account's alone
        if (data / "PG_VERSION").exists():
            # also a data folder from before: no trusted socket, passwords everywhere
            hba = data / "pg_hba.conf"
            if hba.read_text() != PG_HBA:
                hba.write_text(PG_HBA)
            return
        pwfile = root / ".pwfile"
        pwfile.write_text(self.admin_password() + "\n")
        if user:
            shutil.chown(pwfile, user, user)
        pwfile.chmod(0o600)
        proc = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                ADMIN_USER,
                f"--pwfile={pwfile}",
                "--auth-local=scram-sha-256",
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
        (data / "pg_hba.conf").write_text(PG_HBA)

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
                # the socket is the server account's alone (and asks for a password too)
                "-c",
                "unix_socket_permissions=0700",
                "-c",
                "fsync=on",
            ],
            log=log,
            pid_file=pid_file,
            user=user,
            cwd=self._root(),
        )
        wait_until(
            self._accepting_connections,
            service="PostgreSQL",
            timeout_s=self.config.start_timeout_s,
            log=log,
            pid=pid,
        )
        self._provision()

    def stop(self) -> bool:
        # SIGTERM is PostgreSQL's smart shutdown: new connections are refused and the
        # server stops when its clients have left. Flink's sinks never leave by
        # themselves, so after the grace SIGINT, the fast shutdown: clients are
        # disconnected, open transactions roll back, the server checkpoints and stops.
        return stop_pid(
            self.pid_files()["postgres"], sig=signal.SIGINT, grace=(signal.SIGTERM, SMART_SHUTDOWN_S)
        )

    def admin_password(self) -> str:
        """The superuser's password: made at the first start, kept readable by this account only."""
        path = self.config.postgres_dir / "admin-password"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(24) + "\n")
        return path.read_text().strip()

    def admin_url(self, database: str = "postgres") -> str:
        """For setting the stack up (roles, databases) only: no component runs as it."""
        return (
            f"postgresql+psycopg2://{ADMIN_USER}:{self.admin_password()}"
            f"@{LOOPBACK}:{self.config.postgres_port}/{database}"
        )

    def _connect(self, dbname: str, *, user: str = ADMIN_USER, password: str | None = None):  # type: ignore[no-untyped-def]
        import psycopg2

        return psycopg2.connect(
            host=LOOPBACK,
            port=self.config.postgres_port,
            user=user,
            password=self.admin_password() if password is None else password,
            dbname=dbname,
            connect_timeout=2,
        )

    def _accepting_connections(self) -> bool:
        """The server answers (a refused password is an answer: the roles come after)."""
        import psycopg2

        try:
            self._connect("postgres").close()
        except psycopg2.OperationalError as exc:
            return "password authentication failed" in str(exc)
        return True

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

    def settle(self) -> None:
        """A running server's roles take their passwords from their files again (a team
        that sets its own edits the file and runs `stack up`)."""
        self._provision()

    def _provision(self) -> None:
        """The roles and the warehouse database (warehouse_roles); also turns a data folder
        made before the roles existed (the orchestrator was the superuser) into this layout."""
        name = self.config.warehouse_db
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise StackError(
                f"warehouse database name {name!r} is not a plain lower-case identifier",
                "choose a name matching [a-z_][a-z0-9_]* with --warehouse-db",
            )
        conn = self._admin_or_legacy()
        try:
            provision_roles(conn, self.config)
        finally:
            conn.close()
        self.provision_database(name)

    def provision_database(self, name: str) -> None:
        """A database the orchestrator owns, with its grants (warehouse_roles)."""
        provision_database(self._connect, self.config, name)

    def _admin_or_legacy(self) -> Any:
        """A superuser connection. A data folder from before the roles has the orchestrator
        as its superuser (and trusts the socket): the admin is made there, once."""
        import psycopg2

        try:
            return self._connect("postgres")
        except psycopg2.OperationalError as exc:
            cfg = self.config
            try:
                legacy = self._connect("postgres", user=cfg.warehouse_user, password=LEGACY_PASSWORD)
            except psycopg2.OperationalError:
                raise StackError(
                    f"cannot connect to PostgreSQL as {ADMIN_USER}: {str(exc).strip()}",
                    f"if {self.config.postgres_dir / 'admin-password'} was lost, stop the stack and "
                    f"remove {self.data_dir()} (its data goes) and start again",
                ) from exc
            legacy.autocommit = True
            with legacy.cursor() as cur:
                cur.execute(
                    f'create role "{ADMIN_USER}" login superuser password %s', (self.admin_password(),)
                )
            legacy.close()
            conn = self._connect("postgres")
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'alter role "{cfg.warehouse_user}" nosuperuser')
            return conn

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
