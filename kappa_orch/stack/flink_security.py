"""The local Flink cluster is no open door: it runs under its own unprivileged account,
and its REST API, SQL Gateway and internal connections take only clients that present
the stack's certificate (mutual TLS).

Per stack, made at the first `stack up` with the JDK's keytool: one key pair and its
self-signed certificate (for 127.0.0.1 and localhost). Flink's processes hold it as a
PKCS12 keystore and truststore in a folder only the Flink account reads; kappa_orch's
clients hold it as PEM files in the stack's secrets folder, which only the stack's owner
reads (`stack env` prints their paths). Another local user has neither: no TLS handshake
with the REST API or the SQL Gateway, so no session, no job, no statement.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, pkcs12

from kappa_orch.config import FLINK_TLS_CA, FLINK_TLS_CERT, PASSWORDS_DIR
from kappa_orch.errors import StackError
from kappa_orch.stack.config import StackConfig
from kappa_orch.stack.jars import require_tool

# the account Flink's processes run under when the stack is started by root (made by
# `stack up` when missing): it reads the cluster's own files, not the stack's secrets
FLINK_ACCOUNT = "kappa-flink"
_ALIAS = "kappa-flink"
_PASSWORD_VARIABLE = "KAPPA_FLINK_STORE_PASSWORD"
# the names the local cluster's certificate holds (its endpoints bind 127.0.0.1)
LOCAL_NAMES = ["ip:127.0.0.1", "dns:localhost"]


def flink_account() -> str | None:
    """The account to run Flink's processes under: kappa-flink when root starts the stack
    (made here when missing), else None (the caller's own, already unprivileged)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(FLINK_ACCOUNT)
    except KeyError:
        account = ["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"]
        made = subprocess.run(
            ["useradd", *account, "--shell", "/usr/sbin/nologin", FLINK_ACCOUNT],
            capture_output=True,
            text=True,
        )
        if made.returncode != 0:
            raise StackError(
                f"cannot make the account {FLINK_ACCOUNT!r} that Flink runs under: {made.stderr.strip()}",
                f"make it yourself (`useradd --system --user-group {FLINK_ACCOUNT}`), or start the "
                "stack as a normal user (Flink then runs as that user)",
            ) from None
    return FLINK_ACCOUNT


def give_to(account: str | None, *paths: Path, recursive: bool = False) -> None:
    """Make `paths` (and, recursive, all below them) the account's (None: left as they are)."""
    if account is None:
        return
    for path in paths:
        shutil.chown(path, account, account)
        if recursive:
            for root, dirs, files in os.walk(path):
                for name in dirs + files:
                    os.lchown(Path(root) / name, *_ids(account))


def _ids(account: str) -> tuple[int, int]:
    entry = pwd.getpwnam(account)
    return entry.pw_uid, entry.pw_gid


def reachable_by(account: str, folder: Path) -> bool:
    """True when `account` can enter `folder` (every ancestor must be traversable)."""
    return subprocess.run(["test", "-x", str(folder)], user=account, check=False).returncode == 0


def relocate(flink_dir: Path, wheel: Path, account: str | None) -> bool:
    """Make the stack's Flink folder one the Flink account can use. When it can enter the
    stack's folder and the wheel, nothing changes (False). Else (a project under a private
    home, such as /root) the folder becomes a link to one under /var/tmp named after the
    stack, where the wheel's scripts and jars are placed as hard links or copies (True),
    as PostgreSQL's data goes there for the same reason."""
    if account is None or (reachable_by(account, wheel) and reachable_by(account, flink_dir.parent)):
        return False
    digest = hashlib.sha256(str(flink_dir.parent.resolve()).encode()).hexdigest()[:10]
    runtime = Path("/var/tmp") / f"kappa-orch-{digest}" / "flink"
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.parent.chmod(0o755)
    if flink_dir.is_symlink():
        if flink_dir.resolve() == runtime:
            return True
        flink_dir.unlink()
    elif flink_dir.is_dir():  # a stack from before: its folders move over once
        for child in flink_dir.iterdir():
            shutil.move(child, runtime / child.name)
        flink_dir.rmdir()
    flink_dir.symlink_to(runtime, target_is_directory=True)
    return True


def place(source: Path, target: Path, *, copies: bool) -> None:
    """`target` as a link to `source`, or (copies) as a hard link to it, else a copy."""
    if not copies:
        target.symlink_to(source.resolve())
        return
    try:
        os.link(source.resolve(), target)
    except OSError:
        shutil.copy2(source.resolve(), target)


@dataclass(frozen=True)
class FlinkTls:
    """The stack's TLS material: Flink's stores (with their password) and the clients' PEMs."""

    keystore: Path
    truststore: Path
    password: str
    ca: Path  # the certificate: clients verify the server with it
    client: Path  # certificate and key: clients authenticate with it

    def settings(self) -> dict[str, Any]:
        """Flink's configuration: mutual TLS on the REST endpoints (the JobManager's and the
        SQL Gateway's) and on the internal connections (RPC, blobs, data)."""
        stores = {
            "keystore": str(self.keystore),
            "keystore-password": self.password,
            "key-password": self.password,
            "truststore": str(self.truststore),
            "truststore-password": self.password,
        }
        settings: dict[str, Any] = {
            "security.ssl.rest.enabled": True,
            "security.ssl.rest.authentication-enabled": True,
            "security.ssl.internal.enabled": True,
        }
        for scope in ("rest", "internal"):
            settings.update({f"security.ssl.{scope}.{key}": value for key, value in stores.items()})
        return settings


def flink_tls(cfg: StackConfig, account: str | None) -> FlinkTls:
    """The stack's TLS material, made at the first call: Flink's stores in
    <home>/flink/tls (the Flink account's alone), the clients' PEMs and the stores'
    password in <home>/secrets (the stack owner's alone)."""
    secrets_dir = cfg.home / PASSWORDS_DIR
    stores = cfg.flink_dir.resolve() / "tls"  # as Flink names it (the folder may be a link)
    for folder in (secrets_dir, stores):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)
    tls = FlinkTls(
        keystore=stores / "keystore.p12",
        truststore=stores / "truststore.p12",
        password=_store_password(secrets_dir / "flink-store-password"),
        ca=secrets_dir / FLINK_TLS_CA,
        client=secrets_dir / FLINK_TLS_CERT,
    )
    if not all(path.is_file() for path in (tls.keystore, tls.truststore, tls.ca, tls.client)):
        make_material(tls, names=LOCAL_NAMES)
    give_to(account, stores, tls.keystore, tls.truststore)
    return tls


def _store_password(path: Path) -> str:
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip()


def make_material(tls: FlinkTls, *, names: list[str], subject: str = "kappa-orch local stack") -> None:
    """A key pair and its self-signed certificate for `names` (keytool SAN entries such as
    ip:127.0.0.1 or dns:host), as keystore, truststore and PEMs, each readable by its
    owner only (the password reaches keytool through its environment, never its command
    line)."""
    for path in (tls.keystore, tls.truststore, tls.ca, tls.client):
        path.unlink(missing_ok=True)
    pass_env = {**os.environ, _PASSWORD_VARIABLE: tls.password}
    store = ["-storepass:env", _PASSWORD_VARIABLE, "-storetype", "PKCS12"]
    pair = ["-genkeypair", "-alias", _ALIAS, "-keyalg", "RSA", "-keysize", "2048", "-validity", "3650"]
    subject_names = ["-dname", f"CN={subject}", "-ext", f"SAN={','.join(names)}"]
    keystore, truststore = ["-keystore", str(tls.keystore)], ["-keystore", str(tls.truststore)]
    _keytool([*pair, *subject_names, *keystore, "-keypass:env", _PASSWORD_VARIABLE, *store], pass_env)
    _keytool(["-exportcert", "-rfc", "-alias", _ALIAS, *keystore, "-file", str(tls.ca), *store], pass_env)
    _keytool(
        ["-importcert", "-noprompt", "-alias", _ALIAS, "-file", str(tls.ca), *truststore, *store], pass_env
    )
    key, cert, _ = pkcs12.load_key_and_certificates(tls.keystore.read_bytes(), tls.password.encode())
    assert key is not None and cert is not None
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()) + cert.public_bytes(
        Encoding.PEM
    )
    fd = os.open(tls.client, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    for path in (tls.keystore, tls.truststore, tls.ca):
        path.chmod(0o600)


def _keytool(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        [require_tool("keytool", "openjdk-17-jdk-headless"), *args], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise StackError(
            f"keytool could not make the stack's TLS certificate: {(done.stdout + done.stderr).strip()}",
            "check that the JDK's keytool works (`keytool -help`), then run `kappa-orch stack up` again",
        )
