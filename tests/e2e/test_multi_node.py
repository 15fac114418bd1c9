"""A two-node FineTuneJob on the real node with the real trainer image: two pods of an Indexed Job find
each other through the headless Service and the cluster's DNS (CoreDNS, hack/dns.sh), train one DDP
run together (one CPU process each, gloo), checkpoint, survive the deletion of pod 1 mid-run as a
group (both pods replaced, the deletion counted once, resumed from the group's checkpoint), and
export exactly one adapter. Both "nodes" are pods on the one local node: what differs from two
machines is only where the kernel routes their packets. The GPU is the only stand-in (the node
advertises nvidia.com/gpu; this job asks for none).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from kubeft_operator.api import contract
from tests.e2e.conftest import long_run, pod_log, wait_progress
from tests.fixtures.cluster import Cluster
from tests.fixtures.operator import Watcher
from tests.fixtures.s3 import S3

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

INDEX = "batch.kubernetes.io/job-completion-index"


def _index(pod: dict[str, Any]) -> str:
    return str(pod["metadata"]["annotations"][INDEX])


def _exit_code(pod: dict[str, Any]) -> int | None:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if status["name"] == "trainer" and terminated:
            return int(terminated["exitCode"])
    return None


def test_two_pods_train_as_one_group_restart_together_and_export_one_adapter(
    cluster: Cluster, namespace: str, s3: S3, e2e_operator, job_manifest, watch: Watcher
):
    doc = long_run(job_manifest, "pair", steps=160, checkpoint_steps=10)
    doc["spec"]["resources"] = {"gpus": 0, "nodes": 2, "cpu": "500m", "memory": "3Gi"}
    # The deletion of pod 1 costs one retry; were the pod that merely stopped with it counted too,
    # the Job would exceed this and fail.
    doc["spec"]["retryLimit"] = 1
    cluster.apply(doc, namespace=namespace)

    (service,) = cluster.wait_for(lambda: watch.items("services", "pair") or None, timeout=60, what="the Service")
    assert service["spec"]["clusterIP"] == "None"
    before = wait_progress(
        cluster, watch, "pair", lambda p: (p.get("lastCheckpointStep") or 0) >= 10, what="a first group checkpoint"
    )
    assert before["step"] < 160, "training finished before pod 1 could be deleted; make it longer"
    first = {_index(p): p for p in watch.items("pods", "pair")}
    assert sorted(first) == ["0", "1"]

    deleted_at = time.monotonic()
    cluster.kubectl("delete", "pod", "-n", namespace, first["1"]["metadata"]["name"], "--wait=false")

    def regrouped() -> dict[str, dict[str, Any]] | None:
        old = {p["metadata"]["uid"] for p in first.values()}
        fresh = {_index(p): p for p in watch.items("pods", "pair") if p["metadata"]["uid"] not in old}
        return fresh if sorted(fresh) == ["0", "1"] else None

    second = cluster.wait_for(regrouped, timeout=180, what="both pods of the group replaced")
    print(f"deletion of pod 1 to a new group: {time.monotonic() - deleted_at:.1f} s")

    final = watch.wait_phase("pair", "Succeeded", timeout=600)
    assert final["progress"]["step"] == 160

    # Pod 0 stopped because pod 1 did: exit 67, ignored by the Job; pod 1's own SIGTERM checkpoint: 143.
    (job,) = watch.items("jobs", "pair")
    assert job["status"].get("failed") == 1, f"the group restart must count once: {job['status']}"
    assert job["spec"]["completionMode"] == "Indexed"
    old_codes = {
        _index(p): _exit_code(p)
        for p in cluster.get("pods", "-n", namespace, "-l", "kubeft.io/job=pair")["items"]
        if p["metadata"]["uid"] in {q["metadata"]["uid"] for q in first.values()}
    }
    # The deleted pod is gone once it terminated; the old pod 0 stays, failed, with the code that says
    # it stopped because its group did.
    assert old_codes.get("0") == contract.EXIT_PEER_STOPPED, old_codes

    log = pod_log(cluster, namespace, second["0"])
    assert "resuming from" in log, log[-3000:]
    resumed_at = int(log.split("resuming from", 1)[1].split("checkpoint-", 1)[1].split()[0].strip(".,"))
    assert resumed_at >= before["lastCheckpointStep"]
    # Both pods of the new group took part in the same run (each rank logs its own line).
    assert "process 0 of 2: trained to step 160" in log
    assert "process 1 of 2: trained to step 160" in pod_log(cluster, namespace, second["1"])

    # Exactly one adapter: one manifest under the output prefix, written by rank 0.
    manifests = [k for k in s3.keys("adapters/pair") if k.endswith("manifest.json")]
    assert len(manifests) == 1, manifests
    assert final["artifact"]["uri"].startswith(s3.uri("adapters", "pair"))
