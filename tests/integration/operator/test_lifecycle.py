"""A FineTuneJob from apply to Succeeded or Failed, with the operator running as its ServiceAccount."""

from __future__ import annotations

import pytest

from tests.fixtures.cluster import NODE_NAME, Cluster
from tests.integration.operator.conftest import Operator, Watcher, manifest

pytestmark = pytest.mark.cluster


def test_lora_job_runs_to_success_with_progress_and_artifact(
    cluster: Cluster, namespace: str, operator: Operator, watch: Watcher
) -> None:
    cluster.apply(manifest("lora"), namespace=namespace)

    (config_map,) = cluster.wait_for(lambda: watch.items("configmap", "lora"), what="the ConfigMap")
    (job,) = cluster.wait_for(lambda: watch.items("job", "lora"), what="the Job")
    uid = watch.ftj("lora")["metadata"]["uid"]
    for child in (config_map, job):
        assert child["metadata"]["ownerReferences"][0]["uid"] == uid
    assert config_map["metadata"]["name"] == "lora-config"
    assert job["metadata"]["name"] == "lora-train"

    pod = cluster.wait_for(
        lambda: next((p for p in watch.items("pod", "lora") if p["spec"].get("nodeName")), None), what="a bound pod"
    )
    assert pod["spec"]["nodeName"] == NODE_NAME

    running = watch.wait_phase("lora", "Running", timeout=30)
    assert running["startTime"]
    first = cluster.wait_for(lambda: watch.status("lora").get("progress", {}).get("step"), what="progress")
    later = cluster.wait_for(
        lambda: (watch.status("lora").get("progress", {}).get("step") or 0) > first, what="progress to move"
    )
    assert later

    done = watch.wait_phase("lora", "Succeeded", timeout=60)
    assert done["artifact"]["uri"] == "s3://adapters/lora-demo"
    assert done["completionTime"]
    assert done["progress"]["step"] == 30
    assert {c["type"]: c["status"] for c in done["conditions"]} == {
        "Created": "True",
        "Running": "False",
        "Succeeded": "True",
    }
    reasons = cluster.wait_for(
        lambda: (r := watch.event_reasons("lora")) and "Succeeded" in r and r, what="the Succeeded event"
    )
    assert [r for r in reasons if r != "Checkpointed"] == ["Created", "Started", "Succeeded"]


def test_kopf_keeps_no_state_in_the_finetunejob(cluster: Cluster, namespace: str, operator: Operator, watch: Watcher):
    cluster.apply(manifest("stateless", training={"maxSteps": 5}), namespace=namespace)
    watch.wait_phase("stateless", "Succeeded", timeout=60)

    body = watch.ftj("stateless")
    assert not body["metadata"].get("finalizers")
    assert not [a for a in body["metadata"].get("annotations", {}) if "kopf" in a]
    assert "kopf" not in body["status"]


def test_writes_per_job_stay_within_budget(cluster: Cluster, namespace: str, operator: Operator, watch: Watcher):
    cluster.apply(manifest("budget", training={"maxSteps": 10, "checkpointSteps": 100}), namespace=namespace)
    watch.wait_phase("budget", "Succeeded", timeout=60)
    cluster.wait_for(lambda: operator.writes(kind="Event") >= 3, what="the events")
    assert operator.writes(exclude="Event") == 8  # 5 children + Pending, Running, Succeeded
    assert operator.writes(kind="Event") == 3  # Created, Started, Succeeded
    assert operator.metrics()['kubeft_finetunejobs{phase="Succeeded"}'] == 1


def test_operator_stays_small_while_handling_many_jobs(
    cluster: Cluster, namespace: str, operator: Operator, watch: Watcher
) -> None:
    names = [f"many-{i}" for i in range(12)]
    small = {"training": {"maxSteps": 2}, "resources": {"gpus": 0, "cpu": "100m", "memory": "64Mi"}}
    cluster.apply([manifest(n, **small) for n in names], namespace=namespace)

    for name in names:
        watch.wait_phase(name, "Succeeded", timeout=120)

    rss = operator.rss_bytes()
    print(f"operator RSS after {len(names)} jobs: {rss / 2**20:.1f} MiB")
    assert rss < 150 * 2**20
    assert operator.metrics()['kubeft_finetunejobs{phase="Succeeded"}'] == len(names)
