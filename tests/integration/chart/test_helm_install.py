"""The chart against the local control plane: its manifests pass the API server's validation,
`helm install` creates the operator's objects, and the documented CRD upgrade works.

The operator running from its image is the e2e tier's (tests/e2e): installs here use
`operator.replicas=0`: the objects are checked, not a running operator. They also use
`--skip-crds`: Helm 4 would re-apply the shared finetunejobs.kubeft.io that the `cluster` fixture
installed; Helm's CRD handling is checked on a copy of the chart's CRD under a throwaway group.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.cluster import Cluster
from tests.unit.chart import helm

pytestmark = pytest.mark.cluster

CRD_UPGRADE = ("apply", "--server-side", "--force-conflicts", "-f")


def _server_dry_run(cluster: Cluster, objects: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(objects), check=False)


@pytest.mark.parametrize(
    "options",
    [(), ("-f", str(helm.VALUES_DIR / "every-knob.yaml")), ("--set", "operator.replicas=2,peering.enabled=true")],
    ids=["defaults", "every-knob", "peering"],
)
def test_rendered_chart_passes_server_side_validation(
    cluster: Cluster, namespace: str, options: tuple[str, ...]
) -> None:
    objects = helm.render(*options, namespace=namespace)

    done = _server_dry_run(cluster, objects)

    assert done.returncode == 0, done.stderr
    assert f"deployment.apps/{helm.RELEASE}-kubeft-operator created (server dry run)" in done.stdout


@pytest.fixture
def release(cluster: Cluster, namespace: str) -> Iterator[str]:
    """The chart installed under a release name unique to the test, with no operator pod. Uninstalled afterwards,
    as its cluster-scoped RBAC outlives the namespace."""
    name = f"ft-{uuid.uuid4().hex[:6]}"
    install = (
        "install",
        name,
        str(helm.CHART),
        "--namespace",
        namespace,
        "--set",
        "operator.replicas=0",
        "--skip-crds",
    )
    try:
        helm.run(*install, env=cluster.env)
        yield name
    finally:
        helm.run("uninstall", name, "--namespace", namespace, check=False, env=cluster.env)


def test_helm_install_creates_the_operator_objects(cluster: Cluster, namespace: str, release: str) -> None:
    deployment = cluster.get("deployment", f"{release}-kubeft-operator", "-n", namespace)
    service = cluster.get("service", f"{release}-kubeft-metrics", "-n", namespace)
    service_account = cluster.get("serviceaccount", f"{release}-kubeft-operator", "-n", namespace)
    assert deployment["spec"]["replicas"] == 0
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == service_account["metadata"]["name"]
    assert service["spec"]["ports"][0]["port"] == 9090
    assert service_account["metadata"]["labels"]["app.kubernetes.io/instance"] == release


def test_helm_install_reports_the_release_deployed(cluster: Cluster, namespace: str, release: str) -> None:
    status = yaml.safe_load(helm.run("status", release, "--namespace", namespace, "-o", "yaml", env=cluster.env).stdout)

    assert status["info"]["status"] == "deployed"


@pytest.fixture
def helm_installed_crd(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[Path]:
    """The chart's CRD under a throwaway group, installed from a chart's crds/ by helm as a first install does.

    Yields the CRD file; the CRD is deleted afterwards. The shared finetunejobs.kubeft.io stays untouched.
    """
    group = f"t{uuid.uuid4().hex[:8]}.kubeft.io"
    crd = yaml.safe_load((helm.CHART / "crds" / "finetunejob.yaml").read_text())
    crd["metadata"]["name"] = f"{crd['spec']['names']['plural']}.{group}"
    crd["spec"]["group"] = group
    chart = tmp_path / "crd-only"
    (chart / "crds").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: crd-only\nversion: 0.0.1\n")
    crd_file = chart / "crds" / "crd.yaml"
    crd_file.write_text(yaml.safe_dump(crd))
    helm.run("install", "crd-only", str(chart), "--namespace", namespace, env=cluster.env)
    yield crd_file
    helm.run("uninstall", "crd-only", "--namespace", namespace, check=False, env=cluster.env)
    cluster.kubectl("delete", "crd", crd["metadata"]["name"], "--wait=false", check=False)
    shutil.rmtree(chart)


def _change_description(crd_file: Path) -> str:
    crd = yaml.safe_load(crd_file.read_text())
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["description"] = "changed by the next chart version"
    crd_file.write_text(yaml.safe_dump(crd))
    return str(crd["metadata"]["name"])


def test_documented_crd_upgrade_applies_a_changed_crd_over_a_helm_install(
    cluster: Cluster, helm_installed_crd: Path
) -> None:
    name = _change_description(helm_installed_crd)

    cluster.kubectl(*CRD_UPGRADE, str(helm_installed_crd.parent))

    live = cluster.get("crd", name)
    assert (
        live["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["description"] == "changed by the next chart version"
    )


def test_helm_upgrade_leaves_the_crd_unchanged(cluster: Cluster, namespace: str, helm_installed_crd: Path) -> None:
    name = _change_description(helm_installed_crd)

    helm.run("upgrade", "crd-only", str(helm_installed_crd.parents[1]), "--namespace", namespace, env=cluster.env)

    live = cluster.get("crd", name)
    assert (
        live["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["description"] != "changed by the next chart version"
    )


def test_crd_upgrade_without_force_conflicts_is_refused_after_a_helm_install(
    cluster: Cluster, helm_installed_crd: Path
) -> None:
    _change_description(helm_installed_crd)

    done = cluster.kubectl("apply", "--server-side", "-f", str(helm_installed_crd.parent), check=False)

    assert done.returncode != 0
    assert 'conflict with "helm"' in done.stderr


def test_trainer_network_policy_passes_server_side_validation(cluster: Cluster, namespace: str) -> None:
    options = ("--set", "trainer.networkPolicy.enabled=true", "--set", f"operator.watchNamespaces[0]={namespace}")
    objects = [o for o in helm.render(*options, namespace=namespace) if o["kind"] == "NetworkPolicy"]
    assert len(objects) == 1

    done = _server_dry_run(cluster, objects)

    assert done.returncode == 0, done.stderr
    assert "networkpolicy.networking.k8s.io/" in done.stdout
