"""Real Kueue admits, queues and suspends kubeft's trainer Jobs on the real node.

Kueue's manager is built from source and run beside the cluster by hack/kueue.sh (no webhooks: see
docs/kueue-local.md). The GPU is the one stand-in: the node advertises nvidia.com/gpu: 2 on its
status, each job asks for one, and the trainer trains on the CPU.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import long_run, pod_log, wait_progress
from tests.fixtures.cluster import REPO, Cluster
from tests.fixtures.operator import Watcher
from tests.fixtures.s3 import S3

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

KUEUE = "kueue.x-k8s.io/v1beta2"
GPU_QUOTA = 2


@pytest.fixture(scope="module")
def cluster_queue(cluster: Cluster) -> Iterator[str]:
    """Kueue running beside the cluster for this module, and a ClusterQueue of 2 GPUs that every
    namespace may use."""
    env = {**cluster.env, "KUBEFT_CLUSTER_DIR": str(cluster.dir)}
    subprocess.run([str(REPO / "hack" / "kueue.sh"), "up"], env=env, check=True, timeout=180)
    name = f"e2e-gpus-{uuid.uuid4().hex[:6]}"
    quota = [
        {"name": "cpu", "nominalQuota": 100},
        {"name": "memory", "nominalQuota": "100Gi"},
        {"name": "nvidia.com/gpu", "nominalQuota": GPU_QUOTA},
    ]
    cluster.apply(
        [
            {"apiVersion": KUEUE, "kind": "ResourceFlavor", "metadata": {"name": name}},
            {
                "apiVersion": KUEUE,
                "kind": "ClusterQueue",
                "metadata": {"name": name},
                "spec": {
                    "namespaceSelector": {},
                    "resourceGroups": [
                        {
                            "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                            "flavors": [{"name": name, "resources": quota}],
                        }
                    ],
                },
            },
        ]
    )
    cluster.wait_for(lambda: _active(cluster, "clusterqueue", name), timeout=60, what=f"ClusterQueue {name} Active")
    yield name
    cluster.kubectl("delete", "clusterqueue", name, "--wait=false", check=False)
    cluster.kubectl("delete", "resourceflavor", name, "--wait=false", check=False)
    # Kueue stops with this module, so the other tests see no Kueue (the integration tier emulates
    # it on its own queue names); first it releases its finalizers on the Workloads of these tests.
    cluster.wait_for(
        lambda: not cluster.get("workloads", "-A")["items"], timeout=120, what="Kueue's Workloads to be gone"
    )
    subprocess.run([str(REPO / "hack" / "kueue.sh"), "down"], env=env, check=True, timeout=60)


@pytest.fixture
def team(cluster: Cluster, namespace: str, cluster_queue: str) -> str:
    """A LocalQueue `team` in the test's namespace, feeding the module's ClusterQueue."""
    queue = {
        "apiVersion": KUEUE,
        "kind": "LocalQueue",
        "metadata": {"name": "team", "namespace": namespace},
        "spec": {"clusterQueue": cluster_queue},
    }
    cluster.apply(queue)
    cluster.wait_for(lambda: _active(cluster, "localqueue", "team", namespace), timeout=60, what="LocalQueue Active")
    return "team"


def _active(cluster: Cluster, kind: str, name: str, namespace: str | None = None) -> bool:
    where = ["-n", namespace] if namespace else []
    conditions = cluster.get(kind, name, *where).get("status", {}).get("conditions") or []
    return any(c["type"] == "Active" and c["status"] == "True" for c in conditions)


def _queued_run(job_manifest: Any, name: str, queue: str, *, steps: int) -> dict[str, Any]:
    doc = long_run(job_manifest, name, steps=steps, checkpoint_steps=10)
    # Half a core each, so the node's 2 CPUs fit every trainer: only Kueue's GPU quota holds one back.
    doc["spec"]["resources"] = {"gpus": 1, "cpu": "500m", "memory": "3Gi"}
    doc["spec"]["scheduling"] = {"queueName": queue}
    return doc


def test_a_quota_of_two_gpus_runs_two_jobs_and_queues_the_third_until_one_finishes(
    cluster: Cluster,
    namespace: str,
    s3: S3,
    e2e_operator,
    job_manifest,
    watch: Watcher,
    team: str,
    cluster_queue: str,
):
    names = ["first", "second", "third"]
    for name in names:
        cluster.apply(_queued_run(job_manifest, name, team, steps=40), namespace=namespace)

    seen: list[dict[str, str | None]] = []

    def two_running_one_queued() -> dict[str, str | None] | None:
        phases = {n: watch.phase(n) for n in names}
        if not seen or seen[-1] != phases:
            seen.append(phases)
        running = [n for n in names if phases[n] == "Running"]
        queued = [n for n in names if phases[n] == "Queued"]
        return phases if len(running) == 2 and len(queued) == 1 else None

    try:
        phases = cluster.wait_for(two_running_one_queued, timeout=180, interval=0.2, what="two Running, one Queued")
    except AssertionError as err:
        raise AssertionError(f"{err}; phases seen: {seen}") from None
    (waiting,) = [n for n in names if phases[n] == "Queued"]
    (job,) = watch.items("jobs", waiting)
    assert job["spec"]["suspend"] is True and watch.items("pods", waiting) == [], "Kueue holds it: no pod"
    assert watch.condition(waiting, "Queued")["reason"] == "WaitingForAdmission"
    # Kueue's own words on why it waits (the Workload's QuotaReserved=False message).
    cluster.wait_for(
        lambda: "insufficient unused quota for nvidia.com/gpu" in watch.condition(waiting, "Queued").get("message", ""),
        timeout=30,
        what="the Queued condition to carry Kueue's reason",
    )

    for name in names:
        watch.wait_phase(name, "Succeeded", timeout=600)
    first_done = min(watch.status(n)["completionTime"] for n in names if n != waiting)
    assert watch.status(waiting)["startTime"] >= first_done, "the third ran before a GPU was free"
    assert watch.condition(waiting, "Queued")["reason"] == "Admitted"
    for name in names:  # the ClusterQueue comes from the Workload's status.admission when Kueue admits it
        assert f"in ClusterQueue {cluster_queue}" in watch.condition(name, "Queued")["message"]


def test_a_suspended_admitted_job_stays_suspended_then_resumes_from_its_checkpoint(
    cluster: Cluster, namespace: str, s3: S3, e2e_operator, job_manifest, watch: Watcher, team: str
):
    """kubeft suspends through the Workload's spec.active: Kueue never takes the suspend back."""
    cluster.apply(_queued_run(job_manifest, "pausable", team, steps=200), namespace=namespace)
    before = wait_progress(
        cluster, watch, "pausable", lambda p: (p.get("lastCheckpointStep") or 0) >= 10, what="a first checkpoint"
    )
    (first_pod,) = watch.items("pods", "pausable")
    suspend = json.dumps({"spec": {"suspend": True}})
    cluster.kubectl("patch", "ftj", "pausable", "-n", namespace, "--type=merge", "-p", suspend)
    watch.wait_phase("pausable", "Suspended", timeout=60)

    (job,) = watch.items("jobs", "pausable")
    (workload,) = cluster.get("workloads", "-n", namespace, "-l", f"kueue.x-k8s.io/job-uid={job['metadata']['uid']}")[
        "items"
    ]
    assert workload["spec"]["active"] is False
    flaps = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the bar: no flapping for 60 s
        (job,) = watch.items("jobs", "pausable")
        flaps += job["spec"]["suspend"] is not True
        assert watch.phase("pausable") == "Suspended"
        time.sleep(0.5)
    assert flaps == 0, f"the Job was unsuspended {flaps} times while the FineTuneJob was suspended"
    assert [p for p in watch.items("pods", "pausable") if p["status"].get("phase") == "Running"] == []

    resume = json.dumps({"spec": {"suspend": False}})
    cluster.kubectl("patch", "ftj", "pausable", "-n", namespace, "--type=merge", "-p", resume)
    watch.wait_phase("pausable", "Succeeded", timeout=600)
    pods = [p for p in watch.items("pods", "pausable") if p["metadata"]["uid"] != first_pod["metadata"]["uid"]]
    log = pod_log(cluster, namespace, pods[-1])
    resumed_at = int(log.split("resuming from", 1)[1].split("checkpoint-", 1)[1].split()[0].strip(".,"))
    assert resumed_at >= before["lastCheckpointStep"], log[-2000:]
    (job,) = watch.items("jobs", "pausable")
    assert job["status"].get("failed", 0) == 0


@pytest.fixture
def priorities(cluster: Cluster) -> Iterator[tuple[str, str]]:
    """Two PriorityClasses, low and high; Kueue takes a Workload's priority from its pods'."""
    suffix = uuid.uuid4().hex[:6]
    low, high = f"e2e-low-{suffix}", f"e2e-high-{suffix}"
    cluster.apply(
        [
            {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": low}, "value": 100},
            {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": high}, "value": 1000},
        ]
    )
    yield low, high
    cluster.kubectl("delete", "priorityclass", low, high, "--wait=false", check=False)


@pytest.fixture
def one_gpu_queue(cluster: Cluster, namespace: str, cluster_queue: str) -> Iterator[str]:
    """A LocalQueue on a ClusterQueue of one GPU that preempts lower priorities for higher ones."""
    name = f"e2e-one-gpu-{uuid.uuid4().hex[:6]}"
    quota = [
        {"name": "cpu", "nominalQuota": 100},
        {"name": "memory", "nominalQuota": "100Gi"},
        {"name": "nvidia.com/gpu", "nominalQuota": 1},
    ]
    cluster.apply(
        [
            {
                "apiVersion": KUEUE,
                "kind": "ClusterQueue",
                "metadata": {"name": name},
                "spec": {
                    "namespaceSelector": {},
                    "preemption": {"withinClusterQueue": "LowerPriority"},
                    "resourceGroups": [
                        {
                            "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                            # The module's flavor (named after its ClusterQueue).
                            "flavors": [{"name": cluster_queue, "resources": quota}],
                        }
                    ],
                },
            },
            {
                "apiVersion": KUEUE,
                "kind": "LocalQueue",
                "metadata": {"name": "one-gpu", "namespace": namespace},
                "spec": {"clusterQueue": name},
            },
        ]
    )
    cluster.wait_for(lambda: _active(cluster, "localqueue", "one-gpu", namespace), timeout=60, what="LocalQueue")
    yield "one-gpu"
    cluster.kubectl("delete", "clusterqueue", name, "--wait=false", check=False)


def test_a_preempted_low_priority_job_checkpoints_yields_its_gpu_and_resumes_without_a_retry(
    cluster: Cluster,
    namespace: str,
    s3: S3,
    e2e_operator,
    job_manifest,
    watch: Watcher,
    one_gpu_queue: str,
    priorities: tuple[str, str],
):
    low_class, high_class = priorities
    low = _queued_run(job_manifest, "low", one_gpu_queue, steps=150)
    low["spec"]["scheduling"]["priorityClassName"] = low_class
    low["spec"]["retryLimit"] = 0  # a preemption counted as a failure would fail it
    cluster.apply(low, namespace=namespace)
    before = wait_progress(
        cluster, watch, "low", lambda p: (p.get("lastCheckpointStep") or 0) >= 10, what="a first checkpoint"
    )
    (first_pod,) = watch.items("pods", "low")

    high = _queued_run(job_manifest, "high", one_gpu_queue, steps=20)
    high["spec"]["scheduling"]["priorityClassName"] = high_class
    cluster.apply(high, namespace=namespace)

    watch.wait_phase("low", "Queued", timeout=120)  # Kueue preempted it: its Job is suspended again
    (job,) = watch.items("jobs", "low")
    (workload,) = cluster.get("workloads", "-n", namespace, "-l", f"kueue.x-k8s.io/job-uid={job['metadata']['uid']}")[
        "items"
    ]
    evicted = {c["type"]: c for c in workload["status"]["conditions"]}.get("Evicted", {})
    assert evicted.get("reason") == "Preempted", workload["status"]["conditions"]
    # The FineTuneJob says so in Kueue's words: the condition, and an Event.
    queued = watch.condition("low", "Queued")
    assert queued["reason"] == "Preempted", queued
    assert "Preempted to accommodate a workload" in queued["message"], queued
    assert watch.condition("low", "Running")["reason"] == "Preempted"
    cluster.wait_for(lambda: "Preempted" in watch.event_reasons("low"), timeout=30, what="a Preempted Event")
    watch.wait_phase("high", "Succeeded", timeout=300)
    watch.wait_phase("low", "Succeeded", timeout=600)

    first_log = pod_log(cluster, namespace, first_pod)
    pods = [p for p in watch.items("pods", "low") if p["metadata"]["uid"] != first_pod["metadata"]["uid"]]
    log = pod_log(cluster, namespace, pods[-1])
    resumed_at = int(log.split("resuming from", 1)[1].split("checkpoint-", 1)[1].split()[0].strip(".,"))
    # At most one checkpoint interval lost: the SIGTERM checkpoint, or at worst the last periodic one.
    assert resumed_at >= before["lastCheckpointStep"], (first_log[-1500:], log[-1500:])
    (job,) = watch.items("jobs", "low")
    assert job["status"].get("failed", 0) == 0, job["status"]
    assert watch.status("high")["completionTime"] <= watch.status("low")["completionTime"]


def test_a_multi_node_job_is_admitted_as_one_workload_all_of_its_pods_or_none(
    cluster: Cluster, namespace: str, s3: S3, e2e_operator, job_manifest, watch: Watcher, team: str
):
    """Two pods of one GPU each against a quota of two GPUs, one of which another job holds: the group
    waits whole (no pod starts on the one free GPU), then runs whole once the holder finishes."""
    cluster.apply(_queued_run(job_manifest, "holder", team, steps=40), namespace=namespace)
    watch.wait_phase("holder", "Running", timeout=180)
    group = _queued_run(job_manifest, "group", team, steps=20)
    group["spec"]["resources"]["nodes"] = 2
    cluster.apply(group, namespace=namespace)

    def workload() -> dict[str, Any] | None:
        items = cluster.get("workloads", "-n", namespace)["items"]
        mine = [w for w in items if any(o["name"] == "group-train" for o in w["metadata"]["ownerReferences"])]
        return mine[0] if mine else None

    wl = cluster.wait_for(workload, timeout=60, what="the group's Workload")
    (pod_set,) = wl["spec"]["podSets"]
    assert pod_set["count"] == 2, pod_set
    cluster.wait_for(
        lambda: watch.phase("group") == "Queued" and watch.phase("holder") == "Running", timeout=60, what="group queued"
    )
    assert watch.items("pods", "group") == [], "a partial group started on the one free GPU"

    watch.wait_phase("holder", "Succeeded", timeout=600)
    final = watch.wait_phase("group", "Succeeded", timeout=600)
    assert final["startTime"] >= watch.status("holder")["completionTime"]
    pods = watch.items("pods", "group")
    assert sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in pods) == ["0", "1"]
    assert "process 1 of 2: trained to step 20" in pod_log(
        cluster, namespace, next(p for p in pods if p["metadata"]["name"].startswith("group-train-1"))
    )
