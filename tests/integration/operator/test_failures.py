"""Failing trainers: the reason reaches the FineTuneJob, config errors are not retried, Secrets recover."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.fixtures.cluster import Cluster
from tests.integration.operator.conftest import Operator, Watcher, manifest

pytestmark = pytest.mark.cluster


def test_crashing_trainer_fails_after_its_retries_with_reason_and_event(
    cluster: Cluster, namespace: str, operator: Operator, watch: Watcher
) -> None:
    cluster.apply(manifest("crash", model={"source": "fake/crash"}, retryLimit=1), namespace=namespace)

    status = watch.wait_phase("crash", "Failed", timeout=90)

    failed = watch.condition("crash", "Failed")
    assert failed["reason"] == "Error"
    assert failed["message"] == "fake infrastructure failure (gave up after 2 failed attempts; retryLimit is 1)"
    assert status["retries"] == 2
    assert len(watch.items("pod", "crash")) == 2
    events = cluster.wait_for(lambda: [e for e in watch.events("crash") if e["reason"] == "Failed"], what="event")
    assert events[0]["type"] == "Warning"
    assert events[0]["message"].startswith("Error: fake infrastructure failure")


def test_config_error_fails_at_once_without_retry(
    cluster: Cluster, namespace: str, operator: Operator, watch: Watcher
) -> None:
    cluster.apply(manifest("badcfg", model={"source": "fake/invalid-config"}, retryLimit=3), namespace=namespace)

    watch.wait_phase("badcfg", "Failed", timeout=60)

    failed = watch.condition("badcfg", "Failed")
    assert (failed["reason"], failed["message"]) == ("InvalidConfig", "spec.training: fake invalid config")
    assert len(watch.items("pod", "badcfg")) == 1
    (job,) = watch.items("job", "badcfg")
    assert {c["type"]: c.get("reason") for c in job["status"]["conditions"]}["Failed"] == "PodFailurePolicy"


def test_divergence_fails_at_once_without_retry(
    cluster: Cluster, namespace: str, operator: Operator, watch: Watcher
) -> None:
    cluster.apply(manifest("nan", model={"source": "fake/diverge"}), namespace=namespace)

    watch.wait_phase("nan", "Failed", timeout=60)

    assert watch.condition("nan", "Failed")["reason"] == "Diverged"
    assert len(watch.items("pod", "nan")) == 1


def test_infrastructure_failure_is_retried_and_the_run_succeeds(
    cluster: Cluster, namespace: str, operator: Operator, watch: Watcher
) -> None:
    cluster.apply(manifest("flaky", model={"source": "fake/crash-once"}), namespace=namespace)

    status = watch.wait_phase("flaky", "Succeeded", timeout=90)

    assert status["retries"] == 1
    assert len(watch.items("pod", "flaky")) == 2


def test_missing_secret_is_named_in_status_and_the_run_recovers_once_it_exists(
    cluster: Cluster, namespace: str, operator: Operator, watch: Watcher
) -> None:
    cluster.apply(manifest("nosecret", storage={"credentialsSecretRef": {"name": "s3-creds"}}), namespace=namespace)

    blocked = cluster.wait_for(
        lambda: (c := watch.condition("nosecret", "Running")).get("reason") == "CreateContainerConfigError" and c,
        timeout=60,
        what="CreateContainerConfigError",
    )
    assert "s3-creds" in blocked["message"]
    assert watch.phase("nosecret") == "Pending"

    cluster.kubectl(
        "create", "secret", "generic", "s3-creds", "-n", namespace,
        "--from-literal=AWS_ACCESS_KEY_ID=AKIAFAKE", "--from-literal=AWS_SECRET_ACCESS_KEY=not-a-real-secret",
    )  # fmt: skip
    status = watch.wait_phase("nosecret", "Succeeded", timeout=90)
    assert "not-a-real-secret" not in str(status)
    assert all("not-a-real-secret" not in e["message"] for e in watch.events("nosecret"))


def test_name_clash_sets_initial_conditions_and_creation_resumes_once_it_is_gone(
    cluster: Cluster, namespace: str, operator: Operator, watch: Watcher
) -> None:
    cluster.kubectl("create", "configmap", "clash-config", "-n", namespace, "--from-literal=owner=someone-else")
    cluster.apply(manifest("clash", training={"maxSteps": 5}), namespace=namespace)

    created = cluster.wait_for(lambda: watch.condition("clash", "Created"), what="the Created condition")
    assert (created["status"], created["reason"]) == ("False", "CreateFailed")
    assert "ConfigMap clash-config already exists and does not belong to this FineTuneJob" in created["message"]
    assert watch.phase("clash") == "Pending"
    assert watch.items("job", "clash") == []
    assert "CreateFailed" in cluster.wait_for(lambda: watch.event_reasons("clash"), what="an event")

    cluster.kubectl("delete", "configmap", "clash-config", "-n", namespace)

    watch.wait_phase("clash", "Succeeded", timeout=60)
    assert watch.condition("clash", "Created")["status"] == "True"


def test_a_running_job_refused_after_an_operator_restart_is_stopped_in_one_reconcile(
    cluster: Cluster, namespace: str, start_operator: Callable[..., Operator], watch: Watcher
) -> None:
    """An operator upgrade or a stricter platform setting (here allowPrivateEndpoints turned off):
    the refused run's trainer must not keep the GPUs."""
    lenient = start_operator(env={"KUBEFT_ALLOW_PRIVATE_ENDPOINTS": "true"})
    doc = manifest("flip", storage={"endpoint": "http://10.0.3.7:9000"}, training={"maxSteps": 100000})
    cluster.apply(doc, namespace=namespace)
    watch.wait_phase("flip", "Running", timeout=60)
    lenient.stop()

    start_operator(env={"KUBEFT_ALLOW_PRIVATE_ENDPOINTS": "false"})
    watch.wait_phase("flip", "Failed", timeout=60)
    failed = watch.condition("flip", "Failed")
    assert failed["reason"] == "InvalidSpec" and "10.0.3.7" in failed["message"]
    (job,) = watch.items("jobs", "flip")
    assert job["spec"]["suspend"] is True
    cluster.wait_for(
        lambda: all(p["status"].get("phase") != "Running" for p in watch.items("pods", "flip")),
        timeout=60,
        what="the trainer pod to stop",
    )
