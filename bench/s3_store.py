"""An S3-compatible object store on 127.0.0.1 for the local stack's checkpoints: moto's
S3 server (from PyPI, a dev dependency) with one bucket. Prints what to run next.

    .venv/bin/python bench/s3_store.py start [--port 9000] [--bucket kappa-checkpoints]
    .venv/bin/python bench/s3_store.py stop

then (the credentials are moto's own, any value works):

    export AWS_ACCESS_KEY_ID=kappa AWS_SECRET_ACCESS_KEY=kappa-secret
    .venv/bin/kappa-orch stack up --checkpoint-uri s3://kappa-checkpoints/checkpoints \\
        --savepoint-uri s3://kappa-checkpoints/savepoints --s3-endpoint http://127.0.0.1:9000
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PID = ROOT / ".kappa" / "pids" / "moto-s3.pid"


def start(port: int, bucket: str) -> None:
    import boto3

    PID.parent.mkdir(parents=True, exist_ok=True)
    log = (ROOT / ".kappa" / "logs").joinpath("moto-s3.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    PID.write_text(f"{server.pid}\n")
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "kappa"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "kappa-secret"),
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            client.create_bucket(Bucket=bucket)
            break
        except Exception:
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"moto's S3 server did not start; see {log}")
            time.sleep(0.5)
    print(f"S3 store at http://127.0.0.1:{port}, bucket {bucket} (pid {server.pid}, log {log})")


def stop() -> None:
    if PID.exists():
        pid = int(PID.read_text())
        try:
            os.kill(pid, signal.SIGTERM)
            print(f"stopped moto's S3 server (pid {pid})")
        except ProcessLookupError:
            print("moto's S3 server was not running")
        PID.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--bucket", default="kappa-checkpoints")
    args = parser.parse_args()
    if args.action == "start":
        start(args.port, args.bucket)
    else:
        stop()


if __name__ == "__main__":
    main()
