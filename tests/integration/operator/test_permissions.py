"""The operator's RBAC (charts/kubeft/templates/rbac.yaml) and the trainer's per-job Role."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from kubeft_operator.api import status_policy as status_policy_module
from tests.fixtures.cluster import Cluster
from tests.integration.operator.conftest import Identity, Operator, Watcher, manifest
from tests.unit.chart import helm

pytestmark = pytest.mark.cluster


def can(cluster: Cluster, who: str, verb: str, resource: str, namespace: str, *, subresource: str = "") -> bool:
    extra = [f"--subresource={subresource}"] if subresource else []
    proc = cluster.kubectl("auth", "can-i", verb, resource, *extra, "-n", namespace, f"--as={who}", check=False)
    return proc.stdout.strip() == "yes"


@pytest.mark.parametrize("verb", ["get", "list", "watch"])
def test_operator_cannot_read_secrets(cluster: Cluster, namespace: str, operator_identity: Identity, verb: str) -> None:
    who = f"system:serviceaccount:{operator_identity.namespace}:{operator_identity.service_account}"
    assert not can(cluster, who, verb, "secrets", namespace)


@pytest.mark.parametrize(
    ("verb", "resource"),
    [
        ("create", "jobs.batch"),
        ("patch", "finetunejobs.kubeft.io/status"),
        ("create", "roles.rbac.authorization.k8s.io"),
    ],
)
def test_operator_can_manage_its_children(
    cluster: Cluster, namespace: str, operator_identity: Identity, verb: str, resource: str
) -> None:
    who = f"system:serviceaccount:{operator_identity.namespace}:{operator_identity.service_account}"
    assert can(cluster, who, verb, resource, namespace)


def test_trainer_may_patch_only_its_own_status(
    cluster: Cluster, namespace: str, operator: Operator, watch: Watcher
) -> None:
    cluster.apply(manifest("scoped", scheduling={"queueName": "never-admitted"}), namespace=namespace)
    watch.wait_phase("scoped", "Queued", timeout=30)
    who = f"system:serviceaccount:{namespace}:scoped-trainer"

    assert can(cluster, who, "patch", "finetunejobs.kubeft.io/scoped", namespace, subresource="status")
    assert can(cluster, who, "get", "finetunejobs.kubeft.io/scoped", namespace, subresource="status")
    assert not can(cluster, who, "patch", "finetunejobs.kubeft.io/other", namespace, subresource="status")
    assert not can(cluster, who, "patch", "finetunejobs.kubeft.io/scoped", namespace)
    assert not can(cluster, who, "get", "secrets", namespace)


@pytest.fixture(scope="module")
def status_policy(cluster: Cluster) -> None:
    """The chart's trainer status policy, installed as `helm install` would (tests/unit/chart/helm.py)."""
    text = helm.run(*helm.template_args("--show-only", "templates/trainer-status-policy.yaml")).stdout
    cluster.apply(text)


def test_trainer_cannot_forge_phase_conditions_or_artifact_but_reports_progress(
    cluster: Cluster, namespace: str, operator: Operator, watch: Watcher, status_policy: None
) -> None:
    """The API server itself refuses a trainer's write to an operator-owned status field."""
    cluster.apply(manifest("forge", scheduling={"queueName": "never-admitted"}), namespace=namespace)
    watch.wait_phase("forge", "Queued", timeout=30)
    who = f"system:serviceaccount:{namespace}:forge-trainer"

    def patch(body: dict[str, Any], *extra: str) -> subprocess.CompletedProcess[str]:
        return cluster.kubectl(
            "patch", "finetunejob", "forge", "-n", namespace, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": body}), f"--as={who}", *extra, check=False,
        )  # fmt: skip

    # A new policy takes a moment to reach the API server's admission chain; dry runs are admitted too.
    cluster.wait_for(
        lambda: patch({"phase": "Succeeded"}, "--dry-run=server").returncode != 0,
        timeout=60,
        what="the policy to refuse a forged phase",
    )
    for forged in (
        {"phase": "Succeeded"},
        {"artifact": {"uri": "s3://attacker/adapter", "sha256": "0" * 64}},
        {"conditions": []},
        {"completionTime": "2026-01-01T00:00:00Z"},
    ):
        denied = patch(forged)
        assert denied.returncode != 0, forged
        assert status_policy_module.MESSAGE in denied.stderr, denied.stderr
    allowed = patch({"progress": {"step": 3, "totalSteps": 10}, "metrics": {"loss": 1.5}})
    assert allowed.returncode == 0, allowed.stderr
    status = watch.status("forge")
    assert status["phase"] == "Queued" and status.get("artifact") is None
    assert status["progress"]["step"] == 3
