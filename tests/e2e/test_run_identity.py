"""A run owns its checkpoints and artifacts: re-applied jobs start over, warm starts are deliberate.

The path users take, on the real node with the real images: the chart's operator Deployment and
trainer pods of ghcr.io/kubeft/trainer. The GPU is the one stand-in (the node advertises
nvidia.com/gpu and trains on the CPU). S3 is the real SeaweedFS; the read-only-keys test uses its
read-only identity (tests/fixtures/s3.py), whose writes the store really refuses.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.e2e.conftest import long_run, manifest_of, pod_log, wait_progress
from tests.fixtures.cluster import Cluster
from tests.fixtures.operator import Watcher
from tests.fixtures.s3 import S3, IamS3

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

TRAIN_TIMEOUT = 300


def only_pod(watch: Watcher, name: str) -> dict[str, Any]:
    (pod,) = watch.items("pods", name)
    return pod


def first_loss(log: str) -> float:
    """The loss of the first logged step in a trainer log (`step 1/N (..%) loss X ...`)."""
    match = re.search(r"step 1/\d+ \(\d+%\) loss ([0-9.e+-]+)", log)
    assert match, log[-3000:]
    return float(match.group(1))


def test_a_reapplied_job_trains_from_step_zero_and_never_resumes_the_old_run(
    cluster: Cluster, namespace: str, s3: S3, e2e_operator, job_manifest, watch: Watcher
):
    # Checkpoints are kept, so the first run's are still there for the second to (wrongly) find.
    doc = job_manifest("again", resources={"gpus": 0}, output={"s3": {"uri": s3.uri("adapters/again")}})
    doc["spec"]["output"]["keepCheckpoints"] = True
    cluster.apply(doc, namespace=namespace)
    first = watch.wait_phase("again", "Succeeded", timeout=TRAIN_TIMEOUT)
    first_uid = watch.ftj("again")["metadata"]["uid"]
    first_manifest = manifest_of(s3, "adapters/again")
    kept = [k for k in s3.keys(f"adapters/.kubeft-runs/again/{first_uid}/checkpoints/") if k.endswith("/COMPLETE")]
    assert kept, "keepCheckpoints: the first run's checkpoints stay"

    cluster.kubectl("delete", "finetunejob", "again", "-n", namespace, "--cascade=foreground", "--timeout=120s")
    cluster.apply(doc, namespace=namespace)
    second = watch.wait_phase("again", "Succeeded", timeout=TRAIN_TIMEOUT)
    second_uid = watch.ftj("again")["metadata"]["uid"]
    log = pod_log(cluster, namespace, only_pod(watch, "again"))

    assert second_uid != first_uid
    assert "training from step 0" in log and "resuming from" not in log, log[-3000:]
    assert "step 1/40" in log
    assert second["progress"]["startStep"] == 0 and second["progress"]["step"] == 40
    assert second["runUri"] != first["runUri"] and second_uid in second["runUri"]
    second_manifest = manifest_of(s3, "adapters/again")
    assert second_manifest != first_manifest
    assert (first_manifest["run"]["uid"], second_manifest["run"]["uid"]) == (first_uid, second_uid)
    assert second["artifact"]["sha256"] != first["artifact"]["sha256"]
    # The first run's kept checkpoints are untouched; the second has its own.
    assert set(kept) <= set(s3.keys(f"adapters/.kubeft-runs/again/{first_uid}/checkpoints/"))
    assert s3.keys(f"adapters/.kubeft-runs/again/{second_uid}/checkpoints/")


def test_resume_from_a_finished_job_continues_its_weights_and_a_rank_change_is_refused(
    cluster: Cluster, namespace: str, s3: S3, e2e_operator, job_manifest, watch: Watcher
):
    cluster.apply(job_manifest("base", resources={"gpus": 0}), namespace=namespace)
    # Applied at once, as a pipeline would: it waits for `base`, then starts from its adapter.
    more = job_manifest("more", resources={"gpus": 0}, resumeFrom={"job": "base"})
    more["spec"]["training"] = {**more["spec"]["training"], "learningRate": 2.0e-3, "maxSteps": 20}
    cluster.apply(more, namespace=namespace)
    wrong = job_manifest("wrong", resources={"gpus": 0}, resumeFrom={"job": "base"})
    wrong["spec"]["method"]["lora"]["r"] = 16
    cluster.apply(wrong, namespace=namespace)

    refused = watch.wait_phase("wrong", "Failed", timeout=60)
    failed = watch.condition("wrong", "Failed")
    assert failed["reason"] == "InvalidSpec"
    assert "spec.method.lora.r is 16 here but 8" in failed["message"], failed
    assert refused.get("artifact") is None
    assert watch.items("jobs", "wrong") == [] and watch.items("pods", "wrong") == []

    waiting = cluster.wait_for(
        lambda: watch.condition("more", "Created").get("reason") == "WaitingForResumeSource" or None,
        timeout=60,
        what="`more` to wait for `base`",
    )
    assert waiting
    base = watch.wait_phase("base", "Succeeded", timeout=TRAIN_TIMEOUT)
    status = watch.wait_phase("more", "Succeeded", timeout=TRAIN_TIMEOUT)

    assert status["resumedFrom"] == base["artifact"]["uri"] == s3.uri("adapters/base")
    more_log = pod_log(cluster, namespace, only_pod(watch, "more"))
    assert f"starting from the adapter weights of {s3.uri('adapters/base')}" in more_log, more_log[-3000:]
    # The optimizer and schedule start fresh (step 1 of 20), but the weights are base's trained ones:
    # the first loss is already far below base's own first loss from random adapter weights.
    assert "step 1/20" in more_log
    base_log = pod_log(cluster, namespace, only_pod(watch, "base"))
    assert first_loss(more_log) < 0.8 * first_loss(base_log), (first_loss(more_log), first_loss(base_log))
    assert manifest_of(s3, "adapters/more")["run"]["resumedFrom"] == s3.uri("adapters/base")
    assert "Failed" in watch.event_reasons("wrong")


def test_suspend_then_resume_continues_from_the_sigterm_checkpoint_of_the_same_run(
    cluster: Cluster, namespace: str, s3: S3, e2e_operator, job_manifest, watch: Watcher
):
    cluster.apply(long_run(job_manifest, "pause", steps=600, checkpoint_steps=1000), namespace=namespace)
    wait_progress(cluster, watch, "pause", lambda p: p.get("step", 0) >= 5, what="training to start")
    first = only_pod(watch, "pause")
    patch = json.dumps({"spec": {"suspend": True}})
    cluster.kubectl("patch", "finetunejob", "pause", "-n", namespace, "--type=merge", "-p", patch)
    suspended = watch.wait_phase("pause", "Suspended", timeout=120)
    cluster.wait_for(lambda: not watch.items("pods", "pause") or None, timeout=120, what="the trainer pod to go")

    def checkpointed() -> int | None:
        step = (watch.status("pause").get("progress") or {}).get("lastCheckpointStep")
        return int(step) if step else None

    stopped_at = cluster.wait_for(checkpointed, timeout=30, what="the SIGTERM checkpoint in status")
    assert 5 <= stopped_at < 600, suspended
    uid = watch.ftj("pause")["metadata"]["uid"]
    assert f"adapters/.kubeft-runs/pause/{uid}/checkpoints/checkpoint-{stopped_at}/COMPLETE" in s3.keys(
        f"adapters/.kubeft-runs/pause/{uid}/checkpoints/"
    )

    patch = json.dumps({"spec": {"suspend": False}})
    cluster.kubectl("patch", "finetunejob", "pause", "-n", namespace, "--type=merge", "-p", patch)
    status = watch.wait_phase("pause", "Succeeded", timeout=TRAIN_TIMEOUT)
    second = only_pod(watch, "pause")
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    log = pod_log(cluster, namespace, second)
    assert f"checkpoints/checkpoint-{stopped_at} (this run's own checkpoint)" in log, log[-3000:]
    assert status["progress"]["startStep"] == stopped_at
    assert status["progress"]["step"] == 600
    assert f"step {stopped_at + 1}/600" in log and "step 1/600" not in log


def test_read_only_output_keys_fail_in_seconds_before_any_training(
    cluster: Cluster, namespace: str, s3_iam: IamS3, e2e_operator, job_manifest, watch: Watcher, tiny_llama
):
    """Uses the IAM-enforcing S3 server: the read-only identity may read the model and data, not write."""
    admin = s3_iam.client(s3_iam.admin)
    for path in sorted(p for p in tiny_llama.rglob("*") if p.is_file()):
        admin.upload_file(str(path), s3_iam.bucket, f"models/tiny-llama/{path.relative_to(tiny_llama)}")
    admin.put_object(Bucket=s3_iam.bucket, Key="data/chat.jsonl", Body=b'{"messages": []}\n')
    keys = s3_iam.read_only
    cluster.kubectl(
        "create", "secret", "generic", "read-only-keys", "-n", namespace,
        f"--from-literal=AWS_ACCESS_KEY_ID={keys['AWS_ACCESS_KEY_ID']}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={keys['AWS_SECRET_ACCESS_KEY']}",
    )  # fmt: skip
    doc = job_manifest("readonly", resources={"gpus": 0})
    body = doc["spec"]
    body["model"]["source"] = s3_iam.uri("models/tiny-llama")
    body["dataset"]["source"] = s3_iam.uri("data/chat.jsonl")
    body["storage"] = {"endpoint": s3_iam.endpoint, "credentialsSecretRef": {"name": "read-only-keys"}}
    body["output"] = {"s3": {"uri": s3_iam.uri("adapters/readonly")}}
    body.pop("tensorboard")
    cluster.apply(doc, namespace=namespace)

    status = watch.wait_phase("readonly", "Failed", timeout=TRAIN_TIMEOUT)
    failed = watch.condition("readonly", "Failed")
    assert failed["reason"] == "OutputFailed", failed
    assert "AccessDenied" in failed["message"] and s3_iam.bucket in failed["message"], failed
    pod = only_pod(watch, "readonly")
    started = pod["status"]["startTime"]
    seconds = _seconds(status["completionTime"]) - _seconds(started)
    print(f"read-only keys: pod started {started}, FineTuneJob Failed {status['completionTime']} ({seconds:.0f} s)")
    assert seconds <= 60
    (job,) = watch.items("jobs", "readonly")
    assert job["status"].get("failed") == 1, "a refused write is not retried"
    log = pod_log(cluster, namespace, pod)
    assert "cannot write to" in log and "step 1/" not in log, log[-3000:]
    assert keys["AWS_SECRET_ACCESS_KEY"] not in json.dumps(status)
    assert admin.list_objects_v2(Bucket=s3_iam.bucket, Prefix="adapters/").get("KeyCount") == 0


def _seconds(rfc3339: str) -> float:
    import datetime

    return datetime.datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC).timestamp()
