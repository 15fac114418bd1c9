"""The trainer's storage code under real faults: the real store (SeaweedFS, hack/s3.sh) behind the
fault proxy (tests/fixtures/s3faults.py), or restarted for real.

Nothing is faked: the requests are boto3's, the 503s, refusals and cuts reach boto3 over TCP, and
the objects land in the store's files. What is checked: boto3's retries absorb 503 SlowDown and
cut uploads and are counted; :func:`storage.retrying` outlasts a store that is down, gives up
with the last error after its budget, and a checkpoint or an adapter is never left looking
complete when it is not.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kubeft_operator.api import spec as api_spec
from kubeft_trainer import errors, storage
from kubeft_trainer.export import manifest
from kubeft_trainer.export import s3 as export_s3
from kubeft_trainer.train import checkpoints
from tests.fixtures.s3 import S3, store
from tests.fixtures.s3faults import FaultProxy


@pytest.fixture
def proxy(s3: S3) -> Iterator[FaultProxy]:
    faults = FaultProxy(s3.endpoint).start()
    yield faults
    faults.stop()


def kubeft_client(endpoint: str) -> Any:
    """The trainer's own client (its retry mode and counters), for `endpoint`."""
    return storage.client(api_spec.StorageSpec(endpoint=endpoint, region="us-east-1"))


def files(directory: pathlib.Path, sizes: dict[str, int]) -> pathlib.Path:
    directory.mkdir(parents=True)
    for name, size in sizes.items():
        (directory / name).write_bytes(os.urandom(size))
    return directory


def test_slow_down_on_a_fifth_of_requests_is_retried_and_counted(
    s3: S3, proxy: FaultProxy, tmp_path: pathlib.Path
) -> None:
    client = kubeft_client(proxy.endpoint)
    proxy.slow_down(0.2)
    local = files(tmp_path / "d", {f"f{i}.bin": 4096 for i in range(30)} | {"big.bin": 40 * 1024 * 1024})
    before = storage.STATS.retries
    storage.upload_dir(client, local, storage.S3Uri(s3.bucket, "up"))
    for path in local.iterdir():
        assert s3.read(f"up/{path.name}") == path.read_bytes()
    retried = storage.STATS.retries - before
    print(f"requests {proxy.counts['requests']}, 503s {proxy.counts['slow_down']}, retries counted {retried}")
    assert proxy.counts["slow_down"] >= 3
    # Every 503 cost exactly one more attempt, and the counter saw each one.
    assert retried == proxy.counts["slow_down"]


def test_an_upload_cut_mid_body_is_sent_again_whole(s3: S3, proxy: FaultProxy, tmp_path: pathlib.Path) -> None:
    client = kubeft_client(proxy.endpoint)
    proxy.cut_uploads(2, after=256 * 1024)
    data = os.urandom(3 * 1024 * 1024)
    (tmp_path / "x.bin").write_bytes(data)
    storage.upload_file(client, tmp_path / "x.bin", storage.S3Uri(s3.bucket, "cut/x.bin"))
    assert proxy.counts["cut"] == 2
    assert hashlib.sha256(s3.read("cut/x.bin")).hexdigest() == hashlib.sha256(data).hexdigest()


def test_retrying_outlasts_a_store_that_refuses_connections_for_a_while(s3: S3, proxy: FaultProxy) -> None:
    client = kubeft_client(proxy.endpoint)
    proxy.down()
    threading.Timer(6, proxy.up).start()
    started = time.monotonic()
    storage.retrying("probe", lambda: client.put_object(Bucket=s3.bucket, Key="k", Body=b"v"), budget=60)
    elapsed = time.monotonic() - started
    print(f"put succeeded {elapsed:.1f} s after the store went away")
    assert elapsed >= 5
    assert s3.read("k") == b"v"


def test_an_export_past_its_budget_fails_with_the_reason_and_leaves_no_manifest(
    s3: S3, proxy: FaultProxy, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = kubeft_client(proxy.endpoint)
    staged = files(tmp_path / "export", {"adapter_model.safetensors": 200_000, "adapter_config.json": 100})
    manifest.write(staged, baseModel="m", method="lora", task="CAUSAL_LM", step=1, run={})
    uri = s3.uri("adapters", "run")
    # Connections go through until the adapter's weights are sent; then the store "goes away".
    proxy.on_request(lambda method, path: proxy.down() if method == "PUT" and "safetensors" in path else None)
    monkeypatch.setenv(storage.RETRY_BUDGET_ENV, "4")
    with pytest.raises(errors.OutputFailed) as failed:
        export_s3.upload(client, staged, uri)
    message = str(failed.value)
    assert f"uploading the adapter to {uri} failed" in message
    assert "retry budget" in message and storage.RETRY_BUDGET_ENV in message
    assert failed.value.exit_code != errors.EXIT_USER_ERROR  # transient: the Job may retry
    assert "adapters/run/manifest.json" not in s3.keys("adapters/")


def test_a_checkpoint_upload_survives_a_real_store_restart(s3: S3, tmp_path: pathlib.Path) -> None:
    """The store itself (not the proxy) is restarted while the checkpoint's files go up."""
    client = kubeft_client(s3.endpoint)
    identity = checkpoints.Identity(uid="uid-1", spec_hash="h")
    checkpoint = files(tmp_path / "checkpoint-4", {f"shard-{i}.bin": 2 * 1024 * 1024 for i in range(6)})
    checkpoints.mark_complete(checkpoint, step=4, identity=identity)
    remote = checkpoints.Remote(client, s3.uri("checkpoints"), identity)
    restarter = threading.Timer(0.2, store, args=("restart",))
    restarter.start()
    remote.upload(checkpoint, step=4)
    restarter.join()
    assert remote.steps() == [4]
    body = json.loads(s3.read(f"checkpoints/checkpoint-4/{checkpoints.MARKER}"))
    for name in body["files"]:
        assert s3.read(f"checkpoints/checkpoint-4/{name}") == (checkpoint / name).read_bytes()
