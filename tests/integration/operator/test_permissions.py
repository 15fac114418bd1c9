"""The operator's RBAC (charts/kubeft/templates/rbac.yaml) and the trainer's per-job Role."""

from __future__ import annotations

import pytest

from tests.fixtures.cluster import Cluster
from tests.integration.operator.conftest import Identity, Operator, Watcher, manifest

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
