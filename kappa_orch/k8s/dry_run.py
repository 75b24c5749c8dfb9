"""The server-side dry-run layer of `kappa-orch k8s validate`: a real kube-apiserver and
etcd (built from the Go module proxy by scripts/kube_apiserver.sh, cached outside the
repository) are started on 127.0.0.1 for the validation, the operator's CRD is
installed, each rendered object is created with `dryRun=All` (admission, defaulting
and the schemas of the served API, nothing stored), and both processes are stopped.

There is no kubelet or controller manager: nothing runs, only the API answers. Without
the binaries the layer is reported as not run, with the command that builds them."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

LAYER = "server dry-run"
NOT_SERVED = "not served"
BUILD = "scripts/kube_apiserver.sh"


def kube_bin() -> Path:
    """Where scripts/kube_apiserver.sh puts the binaries ($KAPPA_KUBE_CACHE/bin)."""
    cache = os.environ.get("KAPPA_KUBE_CACHE") or str(Path.home() / ".cache" / "kappa-orch" / "kube")
    return Path(cache) / "bin"


def binaries() -> tuple[Path, Path] | None:
    """(kube-apiserver, etcd) when both are built, else None."""
    folder = kube_bin()
    found = folder / "kube-apiserver", folder / "etcd"
    return found if all(p.is_file() and os.access(p, os.X_OK) for p in found) else None


@dataclass(frozen=True)
class ApiServer:
    url: str
    token: str

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> requests.Response:
        return requests.request(
            method,
            self.url + path,
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            verify=False,  # its own self-signed certificate, on loopback
            timeout=30,
        )


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


def _apiserver_argv(apiserver: Path, work: Path, etcd_url: str, port: int, token: str) -> list[str]:
    key = work / "service-account.key"
    subprocess.run(
        ["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True, timeout=60
    )
    (work / "tokens.csv").write_text(f'{token},kappa-validate,kappa-validate,"system:masters"\n')
    return [
        str(apiserver),
        f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={work / 'certs'}",
        f"--token-auth-file={work / 'tokens.csv'}",
        f"--service-account-key-file={key}",
        f"--service-account-signing-key-file={key}",
        "--service-account-issuer=https://kubernetes.default.svc",
        "--service-cluster-ip-range=10.96.0.0/16",
        "--authorization-mode=RBAC",
    ]


@contextlib.contextmanager
def running_apiserver(timeout_s: float = 120.0) -> Iterator[ApiServer]:
    """etcd and kube-apiserver on free loopback ports in a temporary folder, until exit."""
    found = binaries()
    if found is None:
        raise FileNotFoundError(f"no kube-apiserver in {kube_bin()}; run {BUILD}")
    apiserver, etcd = found
    work = Path(tempfile.mkdtemp(prefix="kappa-kube-"))
    client, peer, port = _port(), _port(), _port()
    token = secrets.token_hex(16)
    etcd_process = _spawn(
        [
            str(etcd),
            f"--data-dir={work / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{client}",
            f"--advertise-client-urls=http://127.0.0.1:{client}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=default=http://127.0.0.1:{peer}",
        ],
        work / "etcd.log",
    )
    processes = [etcd_process]
    try:
        argv = _apiserver_argv(apiserver, work, f"http://127.0.0.1:{client}", port, token)
        processes.append(_spawn(argv, work / "kube-apiserver.log"))
        server = ApiServer(f"https://127.0.0.1:{port}", token)
        _await_ready(server, processes, work, timeout_s)
        yield server
    finally:
        for process in reversed(processes):
            _stop(process)
        shutil.rmtree(work, ignore_errors=True)


def _await_ready(
    server: ApiServer, processes: list[subprocess.Popen[bytes]], work: Path, timeout_s: float
) -> None:
    import urllib3

    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(requests.RequestException):
            if server.call("GET", "/readyz").status_code == 200:
                return
        exited = [p.args[0] for p in processes if p.poll() is not None]  # type: ignore[index]
        if exited or time.monotonic() > deadline:
            log = (work / "kube-apiserver.log").read_text(errors="replace")[-1500:]
            raise RuntimeError(f"the kube-apiserver did not become ready ({exited or 'timeout'}): {log}")
        time.sleep(1)


def _plurals(server: ApiServer, api_version: str) -> dict[str, tuple[str, bool]]:
    """kind -> (resource name, namespaced) of one served group version."""
    path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    answer = server.call("GET", path)
    if answer.status_code != 200:
        return {}
    return {
        r["kind"]: (r["name"], r["namespaced"]) for r in answer.json()["resources"] if "/" not in r["name"]
    }


def _create(server: ApiServer, doc: dict[str, Any], namespace: str, *, dry_run: bool) -> str | None:
    """Create the object (with `dry_run`, only as far as admission and validation); None
    when the server accepts it, else what it said."""
    api_version = doc["apiVersion"]
    kinds = _plurals(server, api_version)
    if doc["kind"] not in kinds:
        return NOT_SERVED
    plural, namespaced = kinds[doc["kind"]]
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = f"{base}/namespaces/{namespace}/{plural}" if namespaced else f"{base}/{plural}"
    query = "?fieldValidation=Strict" + ("&dryRun=All" if dry_run else "")
    answer = server.call("POST", path + query, doc)
    if answer.status_code in (200, 201):
        return None
    try:
        return str(answer.json().get("message") or answer.text)[:1500]
    except ValueError:
        return answer.text[:1500]


def _install_crd(server: ApiServer, crd: dict[str, Any], timeout_s: float = 60) -> None:
    problem = _create(server, crd, "", dry_run=False)
    if problem:
        raise RuntimeError(f"the operator's CRD was not installed: {problem}")
    name = crd["metadata"]["name"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = server.call("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}").json()
        conditions = {c["type"]: c["status"] for c in (status.get("status") or {}).get("conditions") or []}
        if conditions.get("Established") == "True":
            return
        time.sleep(0.5)
    raise RuntimeError(f"the CRD {name} was not established within {timeout_s:.0f}s")


def server_findings(
    objects: list[tuple[str, dict[str, Any]]], crd: dict[str, Any] | None, namespace: str
) -> list[Any]:
    """Each object created with dryRun=All against a real kube-apiserver (the operator's
    CRD installed first), as Findings; one `skip` Finding when no kube-apiserver is built."""
    from kappa_orch.k8s.validate import Finding

    if binaries() is None:
        why = f"not run: no kube-apiserver and etcd in {kube_bin()}; `{BUILD}` builds them (about 5 min)"
        return [Finding(LAYER, "all", why, None)]
    started = time.monotonic()
    with running_apiserver() as server:
        _create(
            server,
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            "",
            dry_run=False,
        )
        account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}
        _create(server, account, namespace, dry_run=False)  # what the controller manager would make
        if crd is not None:
            _install_crd(server, crd)
        version = server.call("GET", "/version").json().get("gitVersion", "?")
        found = []
        for name, doc in objects:
            label = f"{name} {doc['kind']}/{doc['metadata']['name']}"
            problem = _create(server, doc, namespace, dry_run=True)
            if problem == NOT_SERVED:  # Strimzi's CRDs are not on Maven Central
                why = f"not run: no CRD for {doc['apiVersion']} {doc['kind']} is available here"
                found.append(Finding(LAYER, label, why, None))
                continue
            message = problem or f"accepted by kube-apiserver {version} (dryRun=All, strict field validation)"
            found.append(Finding(LAYER, label, message, problem is None))
    elapsed = time.monotonic() - started
    found.append(
        Finding(
            LAYER, "all", f"kube-apiserver {version} with etcd, started and stopped in {elapsed:.0f}s", True
        )
    )
    return found
