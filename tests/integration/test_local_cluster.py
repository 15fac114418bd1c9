"""Acceptance tests of the local control plane (hack/cluster.sh) and its node agent (hack/nodeagent.py).

They run real etcd, kube-apiserver, kube-controller-manager and kube-scheduler, so every Job here
goes through the real Job controller and scheduler; only kubelet is replaced by the node agent.
"""

from __future__ import annotations

import base64
import ssl
import textwrap
import urllib.request
from typing import Any

import pytest
import yaml

from tests.fixtures import cluster as cluster_fixture

pytestmark = pytest.mark.cluster

Cluster = cluster_fixture.Cluster


def job(name: str, script: str, *, backoff_limit: int = 0, **pod_spec: Any) -> dict[str, Any]:
    """A batch/v1 Job running ``python -c SCRIPT`` once."""
    container = {"name": "main", "image": "python:3.11", "command": ["python", "-c", textwrap.dedent(script)]}
    container.update(pod_spec.pop("container", {}))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container], **pod_spec}},
        },
    }


def pod(name: str, script: str, **spec: Any) -> dict[str, Any]:
    """A bare Pod running ``python -c SCRIPT``."""
    container = {"name": "main", "image": "python:3.11", "command": ["python", "-c", textwrap.dedent(script)]}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 10, "containers": [container], **spec},
    }


def job_condition(cluster: Cluster, namespace: str, name: str) -> str | None:
    conditions = cluster.get("job", name, "-n", namespace).get("status", {}).get("conditions") or []
    done = [c["type"] for c in conditions if c["type"] in ("Complete", "Failed") and c["status"] == "True"]
    return done[0] if done else None


def job_pods(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    return cluster.get("pods", "-n", namespace, "-l", f"job-name={name}")["items"]


def main_state(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    statuses = cluster.get("pod", name, "-n", namespace).get("status", {}).get("containerStatuses") or [{}]
    return statuses[0].get("state") or {}


def test_apiserver_readyz_is_ok(cluster: Cluster) -> None:
    context = ssl.create_default_context()
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    context.load_verify_locations(
        cadata=base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    )
    user = config["users"][0]["user"]
    cert, key = cluster.dir / "pki" / "admin.crt", cluster.dir / "pki" / "admin.key"
    assert base64.b64decode(user["client-certificate-data"]) == cert.read_bytes()
    context.load_cert_chain(cert, key)
    with urllib.request.urlopen(f"{cluster.server}/readyz", context=context, timeout=10) as resp:
        assert resp.read() == b"ok"


def test_job_running_python_completes(cluster: Cluster, namespace: str) -> None:
    cluster.apply(
        job(
            "hello",
            "print('hello from', __import__('os').environ['KUBEFT_POD'])",
            container={"env": [{"name": "KUBEFT_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
        ),
        namespace=namespace,
    )
    assert (
        cluster.wait_for(lambda: job_condition(cluster, namespace, "hello"), timeout=60, what="job done") == "Complete"
    )
    (p,) = job_pods(cluster, namespace, "hello")
    assert p["status"]["phase"] == "Succeeded"
    log = cluster.kubectl("logs", "-n", namespace, "job/hello").stdout
    assert log.strip() == f"hello from {p['metadata']['name']}"
