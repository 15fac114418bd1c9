"""A dataset on shared storage: `spec.volumes` mounts a PersistentVolumeClaim read-only and the trainer reads it.

All of it is real: the chart's operator from the locally built image, the trainer image on the
local node (kubelet, containerd, runc), the PersistentVolume controller binding the claim, and the
kubelet mounting the volume into the trainer pod of a namespace that enforces the "restricted" Pod
Security Standard (the pod names only the claim). The shared storage is a static hostPath
PersistentVolume on that node, standing in for the NFS or CephFS share a cluster would offer; the
GPU is not used (this job asks for none and trains on the CPU).
"""

from __future__ import annotations

import errno
import pathlib
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import pod_log
from tests.fixtures.cluster import NODE_NAME, REPO, Cluster
from tests.fixtures.operator import Watcher
from tests.fixtures.s3 import S3

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

SHARED_CLUSTER = REPO / "examples" / "06-kueue-shared-cluster.yaml"
CHAT = REPO / "examples" / "data" / "chat.jsonl"
CLAIM = "team-datasets"
JOB = "shared"
TRAINER_UID = 10001  # builders/job.py runs the trainer pod as this user
TRAIN_TIMEOUT = 300
# Run in the trainer container: who it is, and what a write under the mount does.
WRITE_ATTEMPT = """
import errno, os
try:
    open("/datasets/written-by-the-trainer", "w").close()
    outcome = "written"
except OSError as exc:
    outcome = errno.errorcode[exc.errno]
print(os.getuid(), outcome)
"""


@pytest.fixture
def team_datasets(cluster: Cluster, namespace: str, tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    """The claim ``team-datasets`` of the namespace, bound to a static hostPath PersistentVolume on
    the node; gives the volume's directory. Both are deleted when the test ends."""
    root = tmp_path / CLAIM
    root.mkdir()
    # Writable by the trainer's user, so only a read-only mount can stop its write. (The kubelet
    # applies no fsGroup to hostPath volumes, so the directory's mode is what the trainer sees.)
    root.chmod(0o777)
    volume = f"{namespace}-{CLAIM}"
    on_the_node = {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE_NAME]}
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadOnlyMany"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "claimRef": {"namespace": namespace, "name": CLAIM},
                "hostPath": {"path": str(root), "type": "Directory"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [on_the_node]}]}},
            },
        }
    )
    try:
        cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": CLAIM},
                "spec": {
                    "accessModes": ["ReadOnlyMany"],
                    "storageClassName": "",
                    "volumeName": volume,
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
            namespace=namespace,
        )
        cluster.wait_for(
            lambda: cluster.get("pvc", CLAIM, "-n", namespace).get("status", {}).get("phase") == "Bound",
            what=f"the claim {CLAIM} to bind to {volume}",
        )
        yield root
    finally:
        cluster.kubectl("delete", "pvc", CLAIM, "-n", namespace, "--ignore-not-found", "--wait=false", check=False)
        cluster.kubectl("delete", "pv", volume, "--ignore-not-found", "--wait=false", check=False)


def logs(cluster: Cluster, watch: Watcher) -> str:
    """The tail of every trainer pod's log, to say why the job failed."""
    return "\n".join(pod_log(cluster, watch.namespace, pod)[-3000:] for pod in watch.items("pods", JOB))


def test_a_job_trains_on_a_dataset_from_a_claim_it_cannot_write(
    cluster: Cluster,
    namespace: str,
    s3: S3,
    e2e_operator: dict[str, Any],
    job_manifest: Callable[..., dict[str, Any]],
    watch: Watcher,
    team_datasets: pathlib.Path,
) -> None:
    shutil.copyfile(CHAT, team_datasets / "chat.jsonl")
    (team_datasets / "chat.jsonl").chmod(0o644)
    # The bucket's copy goes, so the volume holds the only one the trainer could read.
    s3.client.delete_object(Bucket=s3.bucket, Key="data/chat.jsonl")
    assert s3.keys("data/") == []
    example = yaml.safe_load(SHARED_CLUSTER.read_text())["spec"]
    # Long enough to exec into the trainer while it trains; evaluation as the demo's, twice.
    training = {
        "maxSteps": 200,
        "checkpointSteps": 100,
        "evaluation": {"strategy": "steps", "steps": 100, "metrics": ["perplexity"]},
    }
    doc = job_manifest(
        JOB,
        resources={"gpus": 0},
        training=training,
        volumes=example["volumes"],
        volumeMounts=example["volumeMounts"],
    )
    doc["spec"]["dataset"]["source"] = "/datasets/chat.jsonl"
    assert doc["spec"]["volumes"] == [{"name": "datasets", "persistentVolumeClaim": {"claimName": CLAIM}}]
    cluster.apply(doc, namespace=namespace)

    def training() -> bool:
        status = watch.status(JOB)
        assert status.get("phase") != "Failed", f"{watch.condition(JOB, 'Failed')}\n{logs(cluster, watch)}"
        return (status.get("progress", {}).get("step") or 0) >= 1

    cluster.wait_for(training, timeout=TRAIN_TIMEOUT, interval=0.2, what="a first training step")
    (pod,) = watch.items("pods", JOB)
    (container,) = pod["spec"]["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/datasets"]
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == mount["name"]]
    # The claim is read-only unless the spec says otherwise; the kubelet mounts it read-only then.
    assert volume["persistentVolumeClaim"] == {"claimName": CLAIM, "readOnly": True}
    write = cluster.kubectl(
        "exec", "-n", namespace, pod["metadata"]["name"], "-c", container["name"], "--", "python", "-c", WRITE_ATTEMPT
    )
    assert write.stdout.split() == [str(TRAINER_UID), errno.errorcode[errno.EROFS]], write.stdout
    assert not (team_datasets / "written-by-the-trainer").exists()
    print(f"the write was tried at step {watch.status(JOB)['progress']['step']} of 200")

    status = watch.wait_phase(JOB, "Succeeded", timeout=TRAIN_TIMEOUT)
    assert status["progress"]["step"] == 200
    assert status["artifact"]["uri"] == s3.uri("adapters", JOB)
    log = pod_log(cluster, namespace, pod)
    # 89 records, a tenth of them held out: read from the volume, not downloaded.
    assert "dataset: 80 training and 9 validation records" in log, log[-3000:]
    assert s3.uri("data/chat.jsonl") not in log, log[-3000:]
