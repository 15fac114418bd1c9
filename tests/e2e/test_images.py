"""The images `make images` builds are the ones the chart runs, and they keep their promises.

Checked on the built images, as pods on the local node (kubelet + containerd + runc): the chart's
default images are exactly what hack/images.sh produced; the Deployment's command exists in the
operator image; the trainer image runs as the uid the trainer pods ask for, and carries the
trainer with only the contract part of the operator package; the operator image stays small.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import uuid
from typing import Any

import pytest

from kubeft_operator.builders import job
from tests.fixtures.cluster import REPO, Cluster
from tests.unit.chart import helm

pytestmark = pytest.mark.cluster

CACHE = pathlib.Path(os.environ.get("KUBEFT_CACHE", pathlib.Path.home() / ".cache" / "kubeft"))
LAYOUT = CACHE / "images-bookworm" / "oci"
OPERATOR_SIZE_LIMIT = 300 * 10**6


def built_images() -> dict[str, str]:
    names = subprocess.run([str(REPO / "hack" / "images.sh"), "names"], capture_output=True, text=True, check=True)
    return {name.split("/")[-1].split(":")[0]: name for name in names.stdout.split()}


def run_pod(cluster: Cluster, namespace: str, image: str, command: list[str], **spec: Any) -> tuple[str, str]:
    """Runs one container to completion; returns (phase, log)."""
    name = f"probe-{uuid.uuid4().hex[:6]}"
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "main",
                        "image": image,
                        "imagePullPolicy": "Never",
                        "command": command,
                        # the namespace enforces the restricted Pod Security Standard
                        "securityContext": {
                            "runAsNonRoot": True,
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                    }
                ],
                **spec,
            },
        },
        namespace=namespace,
    )
    phase = cluster.wait_for(
        lambda: (
            (p := cluster.get("pod", name, "-n", namespace).get("status", {}).get("phase")) in ("Succeeded", "Failed")
            and p
        ),
        timeout=120,
        what=f"pod {name} to finish",
    )
    return phase, cluster.logs(namespace, name)


def test_chart_default_images_are_exactly_the_built_ones() -> None:
    rendered = helm.render()
    (deployment,) = [doc for doc in rendered if doc["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    built = built_images()
    assert container["image"] == built["operator"]
    assert env["KUBEFT_TRAINER_IMAGE"] == built["trainer"]


def test_deployment_command_exists_in_the_operator_image(cluster: Cluster, namespace: str) -> None:
    (deployment,) = [doc for doc in helm.render() if doc["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    phase, log = run_pod(cluster, namespace, container["image"], [*container["command"], "--help"])
    assert phase == "Succeeded", log
    assert "kubeft-operator" in log and "--standalone" in log


def test_trainer_image_user_and_contents(cluster: Cluster, namespace: str) -> None:
    script = (
        "import importlib.util, os, json; import kubeft_trainer, kubeft_operator.api; "
        "print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), "
        "'kopf': importlib.util.find_spec('kopf') is not None, "
        "'reconciler': importlib.util.find_spec('kubeft_operator.reconciler') is not None, "
        "'tensorflow': importlib.util.find_spec('tensorflow') is not None}))"
    )
    phase, log = run_pod(cluster, namespace, built_images()["trainer"], ["python", "-c", script])
    assert phase == "Succeeded", log
    facts = json.loads(log.strip().splitlines()[-1])
    assert facts == {
        "uid": job.TRAINER_UID,
        "gid": job.TRAINER_UID,
        "kopf": False,
        "reconciler": False,
        "tensorflow": False,
    }


def image_size(ref: str) -> int:
    index = json.loads((LAYOUT / "index.json").read_text())
    (desc,) = [
        m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref
    ]
    algorithm, digest = desc["digest"].split(":")
    manifest = json.loads((LAYOUT / "blobs" / algorithm / digest).read_text())
    return int(sum(layer["size"] for layer in manifest["layers"]))


def test_operator_image_is_small() -> None:
    size = image_size("operator")
    trainer = image_size("trainer")
    print(f"operator image: {size / 1e6:.0f} MB, trainer image: {trainer / 1e6:.0f} MB (uncompressed layers)")
    assert size <= OPERATOR_SIZE_LIMIT, f"{size / 1e6:.0f} MB"


def test_e2e_namespaces_enforce_the_restricted_pod_security_standard(cluster: Cluster, namespace: str) -> None:
    """So every trainer pod the e2e tests see admitted meets `restricted`: a pod that does not is refused."""
    proc = cluster.kubectl(
        "run", "as-root", "-n", namespace, f"--image={built_images()['python']}", "--restart=Never", "--", "true",
        check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in proc.stderr, proc.stderr
