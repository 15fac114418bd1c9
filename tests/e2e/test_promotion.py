"""spec.promotion on the cluster: a passing gate promotes to spec.output, a failing one leaves it untouched.

Either way the job is Succeeded (training worked), status.artifact says where the adapter is, and
condition Promoted carries the metric, its value and the threshold.
"""

from __future__ import annotations

import hashlib

import pytest

from tests.e2e.conftest import manifest_of
from tests.fixtures.cluster import Cluster
from tests.fixtures.operator import Watcher
from tests.fixtures.s3 import S3

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

TRAIN_TIMEOUT = 300
TRAINING = {
    "maxSteps": 10,
    "checkpointSteps": 10,
    "evaluation": {"strategy": "steps", "steps": 10, "metrics": ["perplexity"]},
}


def promoted(status: dict) -> dict:
    return next(c for c in status["conditions"] if c["type"] == "Promoted")


def test_a_passing_gate_promotes_the_adapter_to_the_output(
    cluster: Cluster, namespace: str, s3: S3, e2e_operator, job_manifest, watch: Watcher
):
    gate = {"thresholds": [{"metric": "eval_loss", "max": 1e6}, {"metric": "eval_perplexity", "max": 1e9}]}
    cluster.apply(
        job_manifest("gate-pass", resources={"gpus": 0}, training=TRAINING, promotion=gate), namespace=namespace
    )

    status = watch.wait_phase("gate-pass", "Succeeded", timeout=TRAIN_TIMEOUT)

    condition = promoted(status)
    assert (condition["status"], condition["reason"]) == ("True", "GatePassed"), condition
    assert "eval_loss" in condition["message"] and "<= 1e+06 passed" in condition["message"]
    assert status["artifact"]["uri"] == s3.uri("adapters", "gate-pass")
    output = manifest_of(s3, "adapters/gate-pass")
    assert {f["path"] for f in output["files"]} >= {"adapter_model.safetensors", "adapter_config.json"}
    digest = hashlib.sha256(s3.read("adapters/gate-pass/manifest.json")).hexdigest()
    assert digest == status["artifact"]["sha256"]
    # The run's own copy stays beside it.
    assert s3.read(f"{status['runUri'].split('/', 3)[3]}/adapter/manifest.json") == s3.read(
        "adapters/gate-pass/manifest.json"
    )
    assert any(e["reason"] == "Promoted" for e in watch.events("gate-pass"))


def test_a_failing_gate_leaves_the_output_untouched_and_says_why(
    cluster: Cluster, namespace: str, s3: S3, e2e_operator, job_manifest, watch: Watcher
):
    gate = {"thresholds": [{"metric": "eval_loss", "max": 0.001}]}
    cluster.apply(
        job_manifest("gate-fail", resources={"gpus": 0}, training=TRAINING, promotion=gate), namespace=namespace
    )

    status = watch.wait_phase("gate-fail", "Succeeded", timeout=TRAIN_TIMEOUT)

    condition = promoted(status)
    assert (condition["status"], condition["reason"]) == ("False", "GateFailed"), condition
    loss = status["metrics"]["eval_loss"]
    assert f"eval_loss {loss:.4g} <= 0.001 failed" in condition["message"]
    assert s3.keys("adapters/gate-fail/") == []
    run_adapter = f"{status['runUri']}/adapter"
    assert status["artifact"]["uri"] == run_adapter
    assert run_adapter in condition["message"]
    key = f"{run_adapter.split('/', 3)[3]}/manifest.json"
    assert hashlib.sha256(s3.read(key)).hexdigest() == status["artifact"]["sha256"]
    assert any(e["reason"] == "NotPromoted" for e in watch.events("gate-fail"))
