"""Queueing through Kueue's contract (suspended Job + queue label) and suspend/resume by the user.

Kueue is emulated here: the test unsuspends the Job as Kueue does on admission, which pins the
operator's side of the contract without Kueue. tests/e2e/test_kueue.py runs the real Kueue, and
stops it again, so that it does not manage these tests' Jobs.
"""

from __future__ import annotations

import json

import pytest

from tests.fixtures.cluster import Cluster
from tests.integration.operator.conftest import Operator, Watcher, manifest

pytestmark = pytest.mark.cluster


def _suspend_job(cluster: Cluster, namespace: str, name: str, value: bool) -> None:
    patch = json.dumps({"spec": {"suspend": value}})
    cluster.kubectl("patch", "job", name, "-n", namespace, "--type=merge", "-p", patch)


def test_queued_job_waits_suspended_until_admitted_like_kueue_does(
    cluster: Cluster, namespace: str, operator: Operator, watch: Watcher
) -> None:
    cluster.apply(manifest("queued", scheduling={"queueName": "team-nlp"}), namespace=namespace)

    watch.wait_phase("queued", "Queued", timeout=30)
    (job,) = watch.items("job", "queued")
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-nlp"
    assert watch.condition("queued", "Queued")["status"] == "True"
    assert watch.items("pod", "queued") == []

    _suspend_job(cluster, namespace, "queued-train", False)  # what Kueue does on admission

    watch.wait_phase("queued", "Running", timeout=30)
    assert watch.condition("queued", "Queued")["reason"] == "Admitted"
    watch.wait_phase("queued", "Succeeded", timeout=60)
    reasons = watch.event_reasons("queued")
    assert reasons.index("Queued") < reasons.index("Started")


def test_suspend_stops_the_trainer_and_resume_restarts_it(
    cluster: Cluster, namespace: str, operator: Operator, watch: Watcher
) -> None:
    cluster.apply(manifest("pausable", training={"maxSteps": 400}), namespace=namespace)
    watch.wait_phase("pausable", "Running", timeout=30)

    cluster.kubectl(
        "patch", "finetunejob", "pausable", "-n", namespace, "--type=merge", "-p", '{"spec":{"suspend":true}}'
    )

    watch.wait_phase("pausable", "Suspended", timeout=30)
    (job,) = watch.items("job", "pausable")
    assert job["spec"]["suspend"] is True
    cluster.wait_for(lambda: not watch.items("pod", "pausable"), timeout=30, what="the trainer pod to go")

    cluster.kubectl(
        "patch", "finetunejob", "pausable", "-n", namespace, "--type=merge", "-p", '{"spec":{"suspend":false}}'
    )

    watch.wait_phase("pausable", "Running", timeout=30)
    (job,) = watch.items("job", "pausable")
    assert job["spec"]["suspend"] is False
    assert watch.condition("pausable", "Suspended")["reason"] == "Resumed"
    cluster.wait_for(lambda: watch.items("pod", "pausable"), timeout=30, what="a new trainer pod")
