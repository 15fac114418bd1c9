"""Two operator replicas with kopf peering: one acts, the other waits and takes over when the first leaves."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest
import yaml

from kubeft_operator.k8s import client
from tests.fixtures.cluster import REPO, Cluster
from tests.integration.operator.conftest import Identity, Operator, Watcher, manifest

pytestmark = pytest.mark.cluster

PEERING = "kubeft-it"


@pytest.fixture(scope="module")
def peering_crds(cluster: Cluster) -> Iterator[None]:
    """The chart's templates/peering.yaml, applied; removed afterwards unless it was there before."""
    helm = shutil.which("helm", path=cluster.env["PATH"])
    assert helm
    rendered = subprocess.run(
        [helm, "template", "ft", str(REPO / "charts" / "kubeft"), "--set", "peering.enabled=true",
         "--show-only", "templates/peering.yaml"],
        env=cluster.env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    names = [doc["metadata"]["name"] for doc in yaml.safe_load_all(rendered) if doc]
    existed = [n for n in names if cluster.kubectl("get", "crd", n, check=False).returncode == 0]
    cluster.apply(rendered)
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{n}" for n in names])
    yield
    for name in set(names) - set(existed):
        cluster.kubectl("delete", "crd", name, "--wait=false", check=False)


def test_only_the_higher_priority_replica_acts_and_the_other_takes_over(
    cluster: Cluster, namespace: str, peering_crds: None, start_operator: Callable[..., Operator], watch: Watcher
) -> None:
    peering = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}}
    cluster.apply(peering, namespace=namespace)
    standby = start_operator(f"--peering={PEERING}", standalone=False, env={"KUBEFT_PEERING_PRIORITY": "100"})
    active = start_operator(f"--peering={PEERING}", standalone=False, env={"KUBEFT_PEERING_PRIORITY": "200"})
    cluster.wait_for(lambda: "Pausing operations in favour of" in standby.log(), timeout=30, what="standby pause")

    cluster.apply(manifest("ha-one", training={"maxSteps": 5}), namespace=namespace)
    watch.wait_phase("ha-one", "Succeeded", timeout=60)

    assert active.writes() > 0
    assert standby.writes() == 0

    active.stop()
    cluster.wait_for(lambda: "Resuming operations after the pause" in standby.log(), timeout=30, what="takeover")
    cluster.apply(manifest("ha-two", training={"maxSteps": 5}), namespace=namespace)
    watch.wait_phase("ha-two", "Succeeded", timeout=60)
    assert standby.writes() > 0


def test_operator_creates_its_cluster_peering_object_once(
    cluster: Cluster, peering_crds: None, operator_identity: Identity
) -> None:
    name = f"kubeft-it-{uuid.uuid4().hex[:6]}"

    async def ensure_twice() -> list[bool]:
        api = client.Api.connect(str(operator_identity.kubeconfig))
        try:
            return [await api.ensure_peering(name, namespace=None) for _ in range(2)]
        finally:
            await api.close()

    try:
        assert asyncio.run(ensure_twice()) == [True, True]
        assert cluster.get("clusterkopfpeering", name)["metadata"]["name"] == name
    finally:
        cluster.kubectl("delete", "clusterkopfpeering", name, check=False)
