"""Is the checkpoint storage writable? Asked before the stack starts Flink, so a store
that refuses writes is named with its fix at once, not found later as a job whose
checkpoints keep failing."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import urlparse

from kappa_orch.errors import StackError, require

PROBE = "_kappa_write_probe"


def check_writable(uri: str, *, s3_endpoint: str | None, what: str = "checkpoint") -> None:
    """Write and delete one small object under `uri` (file:// or s3://); a StackError
    naming the store, what it said and the fix when it refuses."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        _check_folder(Path(parsed.path), uri, what)
    elif parsed.scheme in ("s3", "s3a"):
        _check_bucket(parsed.netloc, parsed.path.strip("/"), uri, s3_endpoint, what)
    else:
        raise StackError(
            f"the {what} storage {uri!r} has a scheme the local stack cannot serve "
            f"({parsed.scheme or 'none'})",
            "give a file:// folder or an s3:// bucket (with --s3-endpoint for an S3-compatible store)",
        )


def _check_folder(folder: Path, uri: str, what: str) -> None:
    probe = folder / f"{PROBE}-{uuid.uuid4().hex}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"kappa")
        probe.unlink()
    except OSError as exc:
        raise StackError(
            f"the {what} folder {uri} refuses writes: {exc}",
            "give the stack a writable folder (--checkpoint-uri / --savepoint-uri) or fix its permissions",
        ) from exc


def _check_bucket(bucket: str, prefix: str, uri: str, endpoint: str | None, what: str) -> None:
    require("boto3", "stack", f"checking the {what} store {uri}")
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    key = f"{prefix}/{PROBE}-{uuid.uuid4().hex}".lstrip("/")
    where = f"{uri} ({endpoint or 'AWS'})"
    client = boto3.client("s3", endpoint_url=endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1"))
    try:
        client.put_object(Bucket=bucket, Key=key, Body=b"kappa")
        client.delete_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "?"), error.get("Message", str(exc))
        fix = {
            "NoSuchBucket": f"create the bucket {bucket!r} first",
            "AccessDenied": "give these credentials write access (s3:PutObject, s3:DeleteObject)",
            "InvalidAccessKeyId": "set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY to the store's credentials",
            "SignatureDoesNotMatch": "set AWS_SECRET_ACCESS_KEY to the store's secret for this key",
        }.get(code, "check the bucket, its permissions and the credentials (AWS_ACCESS_KEY_ID / ...)")
        raise StackError(
            f"the object store refuses {what} writes to {where}: {code}: {message}", fix
        ) from exc
    except BotoCoreError as exc:
        raise StackError(
            f"the object store for {what}s at {where} did not answer: {exc}",
            "start the store, or fix --s3-endpoint (KAPPA_S3_ENDPOINT) and the credentials",
        ) from exc
