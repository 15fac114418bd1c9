"""`kubectl apply` of a FineTuneJob → the real trainer → a verified adapter in S3 (or on the Hub).

The operator runs as the chart's Deployment from the locally built image; the trainer runs in pods
of the locally built trainer image on the local cluster's real node (kubelet, containerd, runc).
Two things are stand-ins, because they cannot run here: the GPU (the node advertises
nvidia.com/gpu capacity but has none, so training runs on the CPU) and the Hugging Face Hub (a
local stand-in from tests/fixtures/hub.py implements the endpoints huggingface_hub uses).
"""

from __future__ import annotations

import hashlib
import pathlib
import subprocess
import sys
import time
from typing import Any

import pytest
import torch

from tests.e2e.conftest import CREDENTIALS_SECRET, long_run, manifest_of, pod_log, wait_progress
from tests.fixtures.cluster import NODE_NAME, Cluster
from tests.fixtures.operator import Watcher
from tests.fixtures.s3 import S3

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

TRAIN_TIMEOUT = 300


def _download(s3: S3, prefix: str, dest: pathlib.Path) -> pathlib.Path:
    for key in s3.keys(prefix + "/"):
        rel = key[len(prefix) + 1 :]
        if rel.startswith(("checkpoints/", "tensorboard/")):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(s3.read(key))
    return dest


def test_release_objects_are_accepted_by_the_api_server(cluster: Cluster, release):
    account = cluster.get("serviceaccount", release.service_account, "-n", release.namespace)
    assert account["metadata"]["name"] == release.service_account
    (deployment,) = cluster.get("deployments", "-n", release.namespace)["items"]
    assert deployment["status"].get("availableReplicas") == 1, deployment["status"]
    can = cluster.kubectl(
        "auth",
        "can-i",
        "create",
        "jobs.batch",
        "--as",
        f"system:serviceaccount:{release.namespace}:{account['metadata']['name']}",
        "-A",
    )
    assert can.stdout.strip() == "yes"


def test_example_trains_to_a_verified_adapter_in_s3(
    cluster: Cluster, namespace: str, s3: S3, e2e_operator, job_manifest, watch: Watcher, tmp_path, tiny_llama
):
    cluster.apply(job_manifest("demo"), namespace=namespace)

    running = watch.wait_phase("demo", "Running", timeout=TRAIN_TIMEOUT)
    assert running["children"]["job"] == "demo-train"
    (pod,) = watch.items("pods", "demo")
    assert pod["spec"]["nodeName"] == NODE_NAME
    assert pod["spec"]["containers"][0]["image"] == "ghcr.io/kubeft/trainer:0.1.0"
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"

    status = watch.wait_phase("demo", "Succeeded", timeout=TRAIN_TIMEOUT)
    progress = status["progress"]
    assert progress["step"] == progress["totalSteps"] == 40
    assert progress["summary"] == "40/40 (100%)"
    assert status["metrics"]["eval_loss"] > 0 and "train_loss" in status["metrics"]

    # TensorBoard event files were streamed under the job's own directory of the shared log dir.
    uid = watch.ftj("demo")["metadata"]["uid"]
    assert status["tensorboardUri"] == s3.uri("tensorboard", "demo", "demo", uid)
    assert any("tfevents" in key for key in s3.keys(f"tensorboard/demo/demo/{uid}/"))

    # The artifact verifies against its manifest, and the manifest against status.
    prefix = "adapters/demo"
    assert status["artifact"]["uri"] == s3.uri(prefix)
    manifest_bytes = s3.read(f"{prefix}/manifest.json")
    assert hashlib.sha256(manifest_bytes).hexdigest() == status["artifact"]["sha256"]
    adapter = _download(s3, prefix, tmp_path / "adapter")
    manifest = manifest_of(s3, prefix)
    files = {entry["path"]: entry for entry in manifest["files"]}
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "metrics.json"} <= set(files)
    for name, entry in files.items():
        data = (adapter / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
        assert len(data) == entry["size"], name
    assert manifest["totalSize"] == status["artifact"]["sizeBytes"]
    assert manifest["run"]["uid"] == uid
    # The documented check of a download: the manifest status names, then every file against it.
    command = [sys.executable, "-m", "kubeft_trainer.export.manifest", str(adapter)]
    verify = subprocess.run(
        [*command, "--sha256", status["artifact"]["sha256"]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    # `aws s3 ls --recursive <output>` lists the adapter alone; the checkpoints were deleted after
    # the export, and the run's prefix beside the output is in status.
    assert {k.removeprefix(prefix + "/") for k in s3.keys(prefix)} == set(files) | {"manifest.json"}
    assert status["runUri"] == s3.uri("adapters", ".kubeft-runs", "demo", uid)
    assert s3.keys(f"adapters/.kubeft-runs/demo/{uid}/checkpoints/") == []
    assert (adapter / "adapter_model.safetensors").stat().st_size < 1_000_000

    # It loads onto its base model with PEFT and produces outputs. (The base is an s3:// URI in
    # adapter_config.json, which AutoPeftModel cannot resolve; the model card says so.)
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert "adapter_model.safetensors" in files
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_llama)), str(adapter))
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llama))
    inputs = tokenizer("What is the capital of France?", return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[-1] == len(tokenizer) and torch.isfinite(logits).all()

    reasons = watch.event_reasons("demo")
    for want in ("Created", "Started", "Succeeded"):
        assert want in reasons, reasons
    # `kubectl logs` of the trainer pod works: the kubelet serves the container's log.
    assert f"adapter uploaded to {s3.uri(prefix)}" in pod_log(cluster, namespace, pod)


def test_missing_dataset_fails_clearly_without_retries(
    cluster: Cluster, namespace: str, s3: S3, e2e_operator, job_manifest, watch: Watcher
):
    doc = job_manifest("nodata", resources={"gpus": 0})
    doc["spec"]["dataset"]["source"] = s3.uri("data/does-not-exist.jsonl")
    cluster.apply(doc, namespace=namespace)

    status = watch.wait_phase("nodata", "Failed", timeout=TRAIN_TIMEOUT)
    failed = watch.condition("nodata", "Failed")
    assert failed["reason"] == "DatasetNotFound"
    assert "does-not-exist.jsonl" in failed["message"]
    assert status.get("artifact") is None
    (job,) = watch.items("jobs", "nodata")
    assert job["status"].get("failed") == 1, "a user error must not be retried"
    assert len(watch.items("pods", "nodata")) == 1
    assert "Failed" in watch.event_reasons("nodata")


def test_missing_credentials_secret_is_named_then_the_job_recovers(
    cluster: Cluster, namespace: str, e2e_operator, job_manifest, watch: Watcher
):
    doc = job_manifest("nocreds", resources={"gpus": 0})
    doc["spec"]["storage"]["credentialsSecretRef"] = {"name": "late-credentials"}
    cluster.apply(doc, namespace=namespace)

    def names_the_secret() -> dict[str, Any] | None:
        for condition in watch.status("nocreds").get("conditions", []):
            if "late-credentials" in condition.get("message", ""):
                return condition
        return None

    condition = cluster.wait_for(names_the_secret, timeout=120, what="a condition naming the missing Secret")
    assert watch.phase("nocreds") == "Pending", condition

    secret = cluster.get("secret", CREDENTIALS_SECRET, "-n", namespace)
    cluster.apply(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "late-credentials"}, "data": secret["data"]},
        namespace=namespace,
    )
    watch.wait_phase("nocreds", "Succeeded", timeout=TRAIN_TIMEOUT)
    assert not any("late-credentials" in c.get("message", "") for c in watch.status("nocreds")["conditions"])


def test_deleted_trainer_pod_is_retried_and_resumes_from_its_checkpoint(
    cluster: Cluster, namespace: str, s3: S3, e2e_operator, job_manifest, watch: Watcher
):
    cluster.apply(long_run(job_manifest, "resume", steps=600, checkpoint_steps=20), namespace=namespace)
    before = wait_progress(
        cluster, watch, "resume", lambda p: (p.get("lastCheckpointStep") or 0) >= 20, what="a first durable checkpoint"
    )
    assert before["step"] < 600, "training finished before the pod could be deleted; make it longer"
    (first,) = watch.items("pods", "resume")
    cluster.kubectl("delete", "pod", first["metadata"]["name"], "-n", namespace, "--wait=false")

    def second_pod() -> dict[str, Any] | None:
        pods = [p for p in watch.items("pods", "resume") if p["metadata"]["uid"] != first["metadata"]["uid"]]
        return pods[0] if pods else None

    replacement = cluster.wait_for(second_pod, timeout=120, what="a replacement trainer pod")
    seen_after: list[int] = []
    deadline = time.monotonic() + TRAIN_TIMEOUT
    while watch.phase("resume") not in ("Succeeded", "Failed") and time.monotonic() < deadline:
        progress = watch.status("resume").get("progress") or {}
        if progress.get("updatedAt", "") > before.get("updatedAt", ""):
            seen_after.append(int(progress["step"]))
        time.sleep(0.2)
    assert watch.phase("resume") == "Succeeded", watch.status("resume")

    log = pod_log(cluster, namespace, replacement)
    assert "resuming from" in log, log[-3000:]
    resumed_at = int(log.split("resuming from", 1)[1].split("checkpoint-", 1)[1].split()[0].strip(".,"))
    assert resumed_at >= before["lastCheckpointStep"]
    assert seen_after and min(seen_after) >= before["lastCheckpointStep"], seen_after
    (job,) = watch.items("jobs", "resume")
    assert job["status"].get("failed", 0) >= 1 and job["status"].get("succeeded") == 1
    assert watch.status("resume")["progress"]["step"] == 600


def test_adapter_is_pushed_to_the_hub(
    cluster: Cluster, namespace: str, e2e_operator, job_manifest, watch: Watcher, hub
):
    """The Hub is a local stand-in (tests/fixtures/hub.py): the real Hub is not reachable here."""
    cluster.kubectl("create", "secret", "generic", "hub-token", "-n", namespace, f"--from-literal=token={hub.token}")
    doc = job_manifest("tohub", resources={"gpus": 0})
    doc["spec"]["output"] = {
        "hub": {"repo": "kubeft-tester/tiny-chat-lora", "tokenSecretRef": {"name": "hub-token"}, "endpoint": hub.url}
    }
    doc["spec"].pop("tensorboard")
    cluster.apply(doc, namespace=namespace)

    status = watch.wait_phase("tohub", "Succeeded", timeout=TRAIN_TIMEOUT)
    assert "kubeft-tester/tiny-chat-lora" in status["artifact"]["uri"]
    repo = hub.repo("kubeft-tester/tiny-chat-lora")
    assert repo.private is True
    files = hub.files("kubeft-tester/tiny-chat-lora")
    names = {p.name for p in files.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "manifest.json", "README.md"} <= names
    assert hub.token not in (files / "README.md").read_text()


def test_cloud_metadata_endpoint_is_refused_before_anything_runs(
    cluster: Cluster, namespace: str, e2e_operator, job_manifest, watch: Watcher
):
    doc = job_manifest("ssrf", resources={"gpus": 0})
    doc["spec"]["storage"]["endpoint"] = "http://169.254.169.254/latest"
    cluster.apply(doc, namespace=namespace)

    watch.wait_phase("ssrf", "Failed", timeout=60)
    failed = watch.condition("ssrf", "Failed")
    assert failed["reason"] == "InvalidSpec"
    assert "spec.storage.endpoint" in failed["message"] and "link-local" in failed["message"]
    assert watch.items("jobs", "ssrf") == []
