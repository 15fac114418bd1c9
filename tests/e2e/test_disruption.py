"""A disrupted trainer pod (evicted, preempted, drained) costs no retry and at most one checkpoint interval.

The real trainer image on the real node; the eviction goes through the API server's Eviction API,
which marks the pod `DisruptionTarget` as preemption and node drain do. The GPU is the only
stand-in (the node advertises nvidia.com/gpu; this job asks for none and trains on the CPU).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.e2e.conftest import long_run, pod_log, wait_progress
from tests.fixtures.cluster import Cluster
from tests.fixtures.operator import Watcher
from tests.fixtures.s3 import S3

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_an_evicted_trainer_resumes_from_its_checkpoint_without_using_a_retry(
    cluster: Cluster, namespace: str, s3: S3, e2e_operator, job_manifest, watch: Watcher
):
    doc = long_run(job_manifest, "evicted", steps=600, checkpoint_steps=20)
    doc["spec"]["retryLimit"] = 0  # any counted failure would fail the Job at once
    cluster.apply(doc, namespace=namespace)
    before = wait_progress(
        cluster, watch, "evicted", lambda p: (p.get("lastCheckpointStep") or 0) >= 20, what="a first durable checkpoint"
    )
    assert before["step"] < 600, "training finished before the pod could be evicted; make it longer"
    (first,) = watch.items("pods", "evicted")
    pod = first["metadata"]["name"]
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": namespace}}
    evicted_at = time.monotonic()
    cluster.kubectl(
        "create", "--raw", f"/api/v1/namespaces/{namespace}/pods/{pod}/eviction", "-f", "-", input=json.dumps(eviction)
    )

    def replacement() -> dict[str, Any] | None:
        pods = [p for p in watch.items("pods", "evicted") if p["metadata"]["uid"] != first["metadata"]["uid"]]
        return pods[0] if pods else None

    second = cluster.wait_for(replacement, timeout=120, what="a replacement trainer pod")
    print(f"eviction to a replacement pod: {time.monotonic() - evicted_at:.1f} s")

    watch.wait_phase("evicted", "Succeeded", timeout=300)

    log = pod_log(cluster, namespace, second)
    assert "resuming from" in log, log[-3000:]
    resumed_at = int(log.split("resuming from", 1)[1].split("checkpoint-", 1)[1].split()[0].strip(".,"))
    # At most one checkpoint interval lost: the SIGTERM checkpoint, or failing that the last periodic one.
    assert resumed_at >= before["lastCheckpointStep"]
    (job,) = watch.items("jobs", "evicted")
    assert job["status"].get("succeeded") == 1
    # With retryLimit 0 a counted failure would have failed the Job (BackoffLimitExceeded).
    assert job["status"].get("failed", 0) == 0, f"the eviction was counted as a failure: {job['status']}"
    assert watch.status("evicted")["progress"]["step"] == 600
