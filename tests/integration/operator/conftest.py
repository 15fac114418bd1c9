"""Fixtures for the operator against the local control plane, run as the chart's ServiceAccount.

- ``operator_identity`` (session): the chart's templates/rbac.yaml rendered with helm for a
  throwaway release and applied; a kubeconfig holding a token of its ServiceAccount (never the
  admin's). Cluster-scoped objects are deleted at the end of the session.
- ``operator`` (function): ``python -m kubeft_operator --standalone --namespace=<test namespace>``
  as a subprocess with that kubeconfig, running hack/fake_trainer.py as the trainer. It can be
  SIGKILLed and restarted; its log is printed when the test ends (pytest shows it on failure).
- ``finetunejob``: the manifest of tests/resources/operator/finetunejob-lora.yaml, with overrides.
"""

from __future__ import annotations

import copy
import pathlib
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from tests.fixtures.cluster import REPO, Cluster
from tests.fixtures.operator import Identity, Operator, Watcher, identity_kubeconfig

# Identity, Operator and Watcher live in the tests.fixtures.operator plugin; tests here import them from this module.
__all__ = ["Identity", "Operator", "Watcher", "manifest"]

RESOURCES = REPO / "tests" / "resources" / "operator"


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def manifest(name: str, **spec: Any) -> dict[str, Any]:
    """The test FineTuneJob named ``name``, with ``spec`` merged in (dicts merge, other values replace)."""
    doc = yaml.safe_load((RESOURCES / "finetunejob-lora.yaml").read_text())
    doc["metadata"]["name"] = name
    doc["spec"] = _merge(doc["spec"], spec)
    return doc


@pytest.fixture(scope="session")
def operator_identity(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Identity]:
    release = f"it{uuid.uuid4().hex[:6]}"
    namespace = f"{release}-system"
    helm = shutil.which("helm", path=cluster.env["PATH"])
    assert helm, "helm is not on PATH (hack/install-tools.sh installs it)"
    rendered = subprocess.run(
        [
            helm,
            "template",
            release,
            str(REPO / "charts" / "kubeft"),
            "-n",
            namespace,
            "--show-only",
            "templates/rbac.yaml",
        ],
        env=cluster.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    objects = [doc for doc in yaml.safe_load_all(rendered) if doc]
    cluster.kubectl("create", "namespace", namespace)
    try:
        cluster.apply(rendered)
        (account,) = [o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"]
        kubeconfig = identity_kubeconfig(
            cluster, namespace=namespace, account=account, path=tmp_path_factory.mktemp("operator") / "kubeconfig"
        )
        yield Identity(namespace=namespace, service_account=account, kubeconfig=kubeconfig)
    finally:
        for obj in objects:
            if obj["kind"] in ("ClusterRole", "ClusterRoleBinding"):
                cluster.kubectl("delete", obj["kind"], obj["metadata"]["name"], "--wait=false", check=False)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture
def start_operator(
    cluster: Cluster, operator_identity: Identity, namespace: str, tmp_path: pathlib.Path
) -> Iterator[Callable[..., Operator]]:
    """Starts operators for the test namespace (extra ``kopf run`` args and env allowed); all stopped afterwards."""
    started: list[Operator] = []

    def start(*args: str, wait: bool = True, standalone: bool = True, env: dict[str, str] | None = None) -> Operator:
        flags = [f"--namespace={namespace}", *(["--standalone"] if standalone else []), *args]
        op = Operator(
            cluster=cluster,
            identity=operator_identity,
            namespace=namespace,
            log=tmp_path / f"operator-{len(started)}.log",
            args=flags,
            env=env or {},
        )
        started.append(op)
        op.start(wait=wait)
        return op

    yield start
    for op in started:
        op.stop()
        print(f"----- operator log {op.log_path.name} -----\n{op.log()[-20000:]}")


@pytest.fixture
def operator(start_operator: Callable[..., Operator]) -> Operator:
    return start_operator()
