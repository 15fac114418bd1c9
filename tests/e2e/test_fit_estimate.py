"""A job whose estimated GPU memory exceeds what its GPU has, with failIfNotFits, fails before any pod.

The release declares 16 GiB for nvidia.com/gpu (conftest); a 7B-shaped spec.model.config in bf16
needs more, so the operator fails the job with reason InsufficientGpuMemory and creates nothing.
"""

from __future__ import annotations

from tests.fixtures.cluster import Cluster
from tests.fixtures.operator import Watcher

LLAMA_7B = {
    "hiddenSize": 4096,
    "numHiddenLayers": 32,
    "intermediateSize": 11008,
    "vocabSize": 32000,
    "numAttentionHeads": 32,
}


def test_a_job_that_cannot_fit_fails_with_a_clear_condition_before_any_pod(
    cluster: Cluster, namespace: str, e2e_operator, job_manifest, watch: Watcher
):
    doc = job_manifest("toobig")
    doc["spec"]["model"]["config"] = LLAMA_7B
    doc["spec"]["resources"] = {**doc["spec"].get("resources", {}), "gpus": 1, "failIfNotFits": True}
    cluster.apply(doc, namespace=namespace)

    status = watch.wait_phase("toobig", "Failed", timeout=60)

    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    fits = next(c for c in status["conditions"] if c["type"] == "Fits")
    assert failed["reason"] == fits["reason"] == "InsufficientGpuMemory"
    assert "exceeds the 16 GiB of nvidia.com/gpu" in failed["message"]
    assert status["estimate"]["totalGib"] > status["estimate"]["gpuMemoryGib"] == 16
    assert not cluster.get("jobs", "-n", namespace)["items"]
    assert not cluster.get("pods", "-n", namespace)["items"]
