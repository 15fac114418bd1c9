"""Object-store faults during real runs lose nothing: the trainer image on the real node, writing to
the real store (SeaweedFS, hack/s3.sh) through the fault proxy (tests/fixtures/s3faults.py).

1. The store restarts (for real: its process stops and starts again on the same data) while a
   checkpoint uploads: the run goes on, and a later resume starts from a complete checkpoint.
2. The store is unreachable for 30 s while the adapter uploads: the job ends Succeeded with a
   manifest whose every sha256 verifies (or, past the retry budget, Failed with the reason; never
   Succeeded with a missing or partial file).
3. A fifth of all requests get 503 SlowDown for the whole run: Succeeded, and the trainer's log
   reports how many requests it retried.

The GPU is the only stand-in (the node advertises nvidia.com/gpu; these jobs ask for none).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.conftest import long_run, manifest_of, pod_log, wait_progress
from tests.fixtures.cluster import Cluster
from tests.fixtures.operator import Watcher
from tests.fixtures.s3 import S3, store
from tests.fixtures.s3faults import FaultProxy

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

RETRIED = re.compile(r"object storage: (\d+) S3 requests, (\d+) retried")


@pytest.fixture
def proxy(s3: S3) -> Iterator[FaultProxy]:
    faults = FaultProxy(s3.endpoint).start()
    yield faults
    faults.stop()


def through(doc: dict[str, Any], proxy: FaultProxy) -> dict[str, Any]:
    """The job's every S3 request goes through the proxy."""
    doc["spec"]["storage"]["endpoint"] = proxy.endpoint
    return doc


def once(action: Callable[[], None]) -> Callable[[], None]:
    lock, done = threading.Lock(), []

    def run() -> None:
        with lock:
            if done:
                return
            done.append(True)
        action()

    return run


def assert_verified(s3: S3, prefix: str, status: dict[str, Any]) -> None:
    """The manifest is the one the status names, and every file it lists is there, whole."""
    assert hashlib.sha256(s3.read(f"{prefix}/manifest.json")).hexdigest() == status["artifact"]["sha256"]
    manifest = manifest_of(s3, prefix)
    assert manifest["files"], manifest
    for entry in manifest["files"]:
        data = s3.read(f"{prefix}/{entry['path']}")
        assert len(data) == entry["size"], entry["path"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["path"]


def trainer_log(cluster: Cluster, namespace: str, watch: Watcher, name: str) -> str:
    return "\n".join(pod_log(cluster, namespace, pod) for pod in watch.items("pods", name))


def test_a_store_restart_during_a_checkpoint_upload_loses_nothing_and_a_later_resume_is_whole(
    cluster: Cluster, namespace: str, s3: S3, proxy: FaultProxy, e2e_operator, job_manifest, watch: Watcher
):
    doc = through(long_run(job_manifest, "restart", steps=400, checkpoint_steps=20), proxy)
    doc["spec"]["retryLimit"] = 0  # a counted failure would fail the Job at once
    restarts: list[float] = []

    def restart() -> None:
        restarts.append(time.monotonic())
        store("restart")
        restarts.append(time.monotonic())

    trigger = once(lambda: threading.Thread(target=restart, daemon=True).start())
    proxy.on_request(lambda method, path: trigger() if method == "PUT" and "/checkpoint-" in path else None)
    cluster.apply(doc, namespace=namespace)

    cluster.wait_for(lambda: len(restarts) == 2, timeout=300, what="the store to restart during a checkpoint upload")
    print(f"store restarted in {restarts[1] - restarts[0]:.1f} s while a checkpoint uploaded")
    # The run goes on, and a checkpoint made after the restart is durable.
    first = watch.status("restart").get("progress") or {}
    after = wait_progress(
        cluster,
        watch,
        "restart",
        lambda p: (p.get("lastCheckpointStep") or 0) > (first.get("lastCheckpointStep") or 0),
        what="a checkpoint uploaded after the restart",
    )
    assert after["step"] < 400, "training finished before it could be interrupted; make it longer"

    # Interrupt it: the replacement must resume from a complete checkpoint of this run.
    (pod,) = watch.items("pods", "restart")
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod["metadata"]["name"]}}
    cluster.kubectl(
        "create",
        "--raw",
        f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}/eviction",
        "-f",
        "-",
        input=json.dumps(eviction),
    )
    watch.wait_phase("restart", "Succeeded", timeout=600)
    log = trainer_log(cluster, namespace, watch, "restart")
    assert "resuming from" in log, log[-3000:]
    resumed_at = int(log.split("resuming from", 1)[1].split("checkpoint-", 1)[1].split()[0].strip(".,"))
    assert resumed_at >= after["lastCheckpointStep"]
    status = watch.status("restart")
    assert status["progress"]["step"] == 400
    assert_verified(s3, "adapters/restart", status)


def test_a_store_down_for_30_s_during_the_export_ends_succeeded_with_a_verified_manifest(
    cluster: Cluster, namespace: str, s3: S3, proxy: FaultProxy, e2e_operator, job_manifest, watch: Watcher
):
    doc = through(job_manifest("outage"), proxy)
    outage: list[float] = []

    def go_down() -> None:
        proxy.down()
        outage.append(time.monotonic())
        threading.Timer(30, lambda: (proxy.up(), outage.append(time.monotonic()))).start()

    trigger = once(go_down)
    # The adapter's first file: the write probe at start-up goes to the same prefix, so it is told apart.
    proxy.on_request(
        lambda method, path: trigger() if method == "PUT" and "/adapters/outage/adapter_" in path else None
    )
    cluster.apply(doc, namespace=namespace)
    watch.wait_phase("outage", "Succeeded", timeout=600)
    assert len(outage) == 2, "the store never went down: the export did not go through the proxy"
    print(f"store unreachable for {outage[1] - outage[0]:.0f} s during the export")
    assert_verified(s3, "adapters/outage", watch.status("outage"))
    log = trainer_log(cluster, namespace, watch, "outage")
    assert "uploading the adapter to" in log and "retrying in" in log, log[-3000:]


def test_a_fifth_of_requests_refused_with_slow_down_for_a_whole_run_still_succeeds(
    cluster: Cluster, namespace: str, s3: S3, proxy: FaultProxy, e2e_operator, job_manifest, watch: Watcher
):
    proxy.slow_down(0.2)
    cluster.apply(through(job_manifest("throttled"), proxy), namespace=namespace)
    watch.wait_phase("throttled", "Succeeded", timeout=600)
    assert_verified(s3, "adapters/throttled", watch.status("throttled"))
    log = trainer_log(cluster, namespace, watch, "throttled")
    match = RETRIED.search(log)
    assert match, log[-3000:]
    requests, retried = int(match[1]), int(match[2])
    print(f"proxy: {dict(proxy.counts)}; trainer: {requests} requests, {retried} retried")
    assert retried > 0
    # Only the proxy sends 503s, and it also answers the operator's verification pod.
    assert retried <= proxy.counts["slow_down"]
