"""S3 access for every stage: download models and datasets, upload checkpoints, logs and adapters.

The endpoint and region come from `spec.storage` (docs/DESIGN.md), credentials from boto3's
usual chain (the operator sets AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from the Secret).
Large files go up in parallel multipart chunks (boto3 TransferConfig) and every request is
retried with backoff, so a flaky link costs seconds, not the run. On top of that, whole
operations that must not be lost (a checkpoint, the adapter) are retried by :func:`retrying`
within a time budget, which outlasts a store that restarts or is down for a while. Every retried
request is counted (:data:`STATS`), and the count is logged.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import boto3
import boto3.s3.transfer
import botocore.config
import botocore.exceptions

from kubeft_operator.api import spec as api_spec
from kubeft_trainer import egress

log = logging.getLogger(__name__)
T = TypeVar("T")
MiB = 1024 * 1024
TRANSFER = boto3.s3.transfer.TransferConfig(
    multipart_threshold=16 * MiB, multipart_chunksize=16 * MiB, max_concurrency=8, use_threads=True
)
# Codes after which retrying cannot succeed: the user must fix a bucket, a policy or a key.
PERMANENT_CODES = frozenset(
    {"AccessDenied", "NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}
)
# How long an operation that must not be lost (a checkpoint, the adapter) keeps being retried
# after boto3's own retries gave up: long enough for a store to restart or fail over.
RETRY_BUDGET_ENV = "KUBEFT_S3_RETRY_BUDGET_SECONDS"
DEFAULT_RETRY_BUDGET = 300.0
MAX_BACKOFF = 30.0


class Stats:
    """Requests sent to S3 by this process: API calls, and HTTP attempts (a retry is an extra attempt)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0
        self.attempts = 0

    def on_call(self, **_: Any) -> None:
        with self._lock:
            self.calls += 1

    def on_send(self, **_: Any) -> None:
        with self._lock:
            self.attempts += 1

    @property
    def retries(self) -> int:
        """Attempts beyond the first of each call: boto3's own retries (503 SlowDown, resets, timeouts)."""
        with self._lock:
            return max(0, self.attempts - self.calls)

    def summary(self) -> str:
        return f"{self.calls} S3 requests, {self.retries} retried"


STATS = Stats()


@dataclasses.dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        if not uri.startswith("s3://"):
            raise ValueError(f"not an s3:// URI: {uri}")
        bucket, _, key = uri[len("s3://") :].partition("/")
        return cls(bucket=bucket, key=key.strip("/"))

    def join(self, *parts: str) -> S3Uri:
        key = "/".join(p.strip("/") for p in (self.key, *parts) if p.strip("/"))
        return S3Uri(bucket=self.bucket, key=key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def client(storage: api_spec.StorageSpec | None) -> Any:
    """A boto3 S3 client for `spec.storage` (endpoint, region), retrying with adaptive backoff."""
    endpoint = storage.endpoint if storage else None
    region = storage.region if storage else "us-east-1"
    config = botocore.config.Config(
        retries={"max_attempts": 8, "mode": "adaptive"},
        connect_timeout=10,
        read_timeout=60,
        s3={"addressing_style": "path"} if endpoint else {},
    )
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region, config=config)
    # Counted per API call and per HTTP attempt (each retry sends again), for the logs.
    s3.meta.events.register("before-call.s3", STATS.on_call)
    s3.meta.events.register("before-send.s3", STATS.on_send)
    return s3


def _causes(exc: BaseException, limit: int) -> Iterator[BaseException]:
    """`exc`, then the errors it was raised from or during, at most `limit` in all."""
    seen: BaseException | None = exc
    for _ in range(limit):
        if seen is None:
            return
        yield seen
        seen = seen.__cause__ or seen.__context__


def error_code(exc: BaseException) -> str:
    """The S3 error code of `exc`, or of the error it wraps (boto3's transfers wrap ClientError)."""
    for seen in _causes(exc, 5):
        if isinstance(seen, botocore.exceptions.ClientError):
            return str(seen.response.get("Error", {}).get("Code", ""))
    return ""


def is_permanent(exc: BaseException) -> bool:
    """Retrying cannot help: refused credentials or bucket, no credentials, or an endpoint the
    egress guard refuses (which boto3 reports wrapped in a connection error)."""
    if error_code(exc) in PERMANENT_CODES:
        return True
    refused = (botocore.exceptions.NoCredentialsError, egress.EndpointRefused)
    return any(isinstance(seen, refused) for seen in _causes(exc, 8))


def retry_budget(env: Any = None) -> float:
    """Seconds :func:`retrying` may spend, from $KUBEFT_S3_RETRY_BUDGET_SECONDS (default 300)."""
    raw = (os.environ if env is None else env).get(RETRY_BUDGET_ENV, "")
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_RETRY_BUDGET
    except ValueError:
        log.warning("ignoring %s=%r: not a number of seconds", RETRY_BUDGET_ENV, raw)
        return DEFAULT_RETRY_BUDGET


def retrying(
    what: str,
    operation: Callable[[], T],
    *,
    budget: float | None = None,
    permanent: Callable[[BaseException], bool] = is_permanent,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run `operation` until it succeeds, a permanent error, or the budget is spent.

    For whole operations that must not be lost (upload a checkpoint, the adapter): boto3 already
    retried each request; this outlasts a store that is down longer than those retries wait.
    Backoff doubles from 1 s up to 30 s, never past the budget; the last error is raised.
    """
    budget = retry_budget() if budget is None else budget
    deadline = clock() + budget
    delay = 1.0
    failures = 0
    while True:
        try:
            result = operation()
        except Exception as exc:
            failures += 1
            left = deadline - clock()
            if permanent(exc) or left <= 0:
                if failures > 1:
                    log.warning("%s failed %d times in the %.0f s retry budget; giving up", what, failures, budget)
                raise
            wait = min(delay, left, MAX_BACKOFF)
            log.warning(
                "%s failed (%s); retrying in %.0f s (%.0f s of the retry budget left)", what, describe(exc), wait, left
            )
            sleep(wait)
            delay *= 2
            continue
        if failures:
            log.info("%s succeeded after %d failed attempt(s)", what, failures)
        return result


def describe(exc: BaseException) -> str:
    """A short description of an S3 failure, without its request details."""
    return error_code(exc) or type(exc).__name__ + (f": {exc}" if str(exc) else "")


def list_objects(s3: Any, uri: S3Uri) -> Iterator[tuple[str, int, str]]:
    """(key, size, ETag) of every object under the prefix `uri.key/`."""
    prefix = uri.key + "/" if uri.key else ""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=uri.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield obj["Key"], int(obj["Size"]), str(obj.get("ETag", "")).strip('"')


def list_keys(s3: Any, uri: S3Uri) -> Iterator[tuple[str, int]]:
    """(key, size) of every object under the prefix `uri.key/`."""
    for key, size, _ in list_objects(s3, uri):
        yield key, size


def list_dirs(s3: Any, uri: S3Uri) -> list[str]:
    """Names of the immediate 'subdirectories' of the prefix."""
    prefix = uri.key + "/" if uri.key else ""
    names = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=uri.bucket, Prefix=prefix, Delimiter="/"):
        for common in page.get("CommonPrefixes", []):
            names.append(common["Prefix"][len(prefix) :].rstrip("/"))
    return names


def exists(s3: Any, uri: S3Uri) -> bool:
    try:
        s3.head_object(Bucket=uri.bucket, Key=uri.key)
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def download_file(s3: Any, uri: S3Uri, dest: pathlib.Path) -> pathlib.Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    s3.download_file(uri.bucket, uri.key, str(dest), Config=TRANSFER)
    return dest


def download_prefix(s3: Any, uri: S3Uri, dest: pathlib.Path) -> int:
    """Mirror every object under the prefix into `dest`, skipping files already there and unchanged.

    "Unchanged" means the same size and the same ETag as when this mirror last downloaded it
    (recorded in `dest/.kubeft-etags.json`), so a model re-uploaded under the same key with the same
    size is fetched again. Returns the number of objects found (0: the prefix is empty or missing).
    """
    prefix = uri.key + "/" if uri.key else ""
    known = _read_etags(dest)
    fetched: dict[str, str] = {}
    count = 0
    for key, size, etag in list_objects(s3, uri):
        count += 1
        rel = key[len(prefix) :]
        if not rel or rel.endswith("/") or rel == ETAGS:
            continue
        target = dest / rel
        if target.is_file() and target.stat().st_size == size and etag and known.get(rel) == etag:
            continue
        download_file(s3, S3Uri(uri.bucket, key), target)
        fetched[rel] = etag
    if fetched:
        _write_etags(dest, {**known, **fetched})
    return count


def mirror_file(s3: Any, uri: S3Uri, dest: pathlib.Path) -> bool:
    """Download one object to `dest` unless the copy there is unchanged (as :func:`download_prefix`
    decides: the same size and ETag as when this mirror fetched it). True when it downloaded.

    The ranks of a pod call it one after the other: the first fetches, the others find the copy.
    """
    head = s3.head_object(Bucket=uri.bucket, Key=uri.key)
    size, etag = int(head.get("ContentLength", -1)), str(head.get("ETag", ""))
    known = _read_etags(dest.parent)
    if dest.is_file() and dest.stat().st_size == size and etag and known.get(dest.name) == etag:
        return False
    download_file(s3, uri, dest)
    _write_etags(dest.parent, {**_read_etags(dest.parent), dest.name: etag})
    return True


ETAGS = ".kubeft-etags.json"


def _read_etags(dest: pathlib.Path) -> dict[str, str]:
    try:
        doc = json.loads((dest / ETAGS).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in doc.items()} if isinstance(doc, dict) else {}


def _write_etags(dest: pathlib.Path, etags: dict[str, str]) -> None:
    # Written whole and renamed into place: pods sharing the cache volume never read half a file.
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / f"{ETAGS}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(etags, sort_keys=True))
    tmp.replace(dest / ETAGS)


def upload_file(s3: Any, path: pathlib.Path, uri: S3Uri) -> None:
    s3.upload_file(str(path), uri.bucket, uri.key, Config=TRANSFER)


def upload_bytes(s3: Any, data: bytes, uri: S3Uri) -> None:
    s3.put_object(Bucket=uri.bucket, Key=uri.key, Body=data)


def upload_dir(s3: Any, directory: pathlib.Path, uri: S3Uri, *, last: tuple[str, ...] = ()) -> list[str]:
    """Upload every file under `directory`; the relative paths in `last` go up after all others.

    Returns the uploaded relative paths in upload order.
    """
    files = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())
    ordered = [f for f in files if f not in last] + [f for f in last if f in files]
    for rel in ordered:
        upload_file(s3, directory / rel, uri.join(rel))
    return ordered
