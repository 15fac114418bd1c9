"""End-to-end fixtures: kubeft installed with Helm, its operator running as the chart's ServiceAccount,
the real trainer run by the node agent, and a real S3 server on loopback.

- ``release`` (session): ``helm install`` of charts/kubeft into its own namespace. The Deployment
  is installed with 0 replicas (there is no container runtime here); the same operator code runs
  as a local process with a token of the chart's ServiceAccount, so the chart's RBAC is what the
  operator really gets.
- ``e2e_operator``: that operator for the test namespace, launching the real trainer
  (``accelerate launch -m kubeft_trainer``).
- ``tiny_llama`` (session): a 2-layer Llama-style checkpoint built locally (hack/tiny_models.py).
- ``job_manifest``: examples/00-demo-tiny-lora.yaml pointed at the test's bucket and model.
"""

from __future__ import annotations

import copy
import json
import pathlib
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from hack import tiny_models
from tests.fixtures.cluster import REPO, Cluster
from tests.fixtures.operator import Identity, Operator, identity_kubeconfig
from tests.fixtures.s3 import S3

DEMO = REPO / "examples" / "00-demo-tiny-lora.yaml"
CREDENTIALS_SECRET = "demo-s3-credentials"


@pytest.fixture(scope="session")
def release(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Identity]:
    name = f"e2e{uuid.uuid4().hex[:6]}"
    system = f"{name}-system"
    helm = shutil.which("helm", path=cluster.env["PATH"])
    assert helm, "helm is not on PATH (hack/install-tools.sh installs it)"
    install = [helm, "install", name, str(REPO / "charts" / "kubeft"), "-n", system, "--create-namespace"]
    subprocess.run([*install, "--skip-crds", "--set", "operator.replicas=0"], env=cluster.env, check=True)
    try:
        (account,) = [
            sa["metadata"]["name"]
            for sa in cluster.get("serviceaccounts", "-n", system, "-l", f"app.kubernetes.io/instance={name}")["items"]
        ]
        kubeconfig = identity_kubeconfig(
            cluster, namespace=system, account=account, path=tmp_path_factory.mktemp("e2e") / "kubeconfig"
        )
        yield Identity(namespace=system, service_account=account, kubeconfig=kubeconfig)
    finally:
        subprocess.run([helm, "uninstall", name, "-n", system, "--wait=false"], env=cluster.env, check=False)
        cluster.kubectl("delete", "namespace", system, "--wait=false", check=False)


@pytest.fixture
def e2e_operator(cluster: Cluster, release: Identity, namespace: str, tmp_path: pathlib.Path) -> Iterator[Operator]:
    op = Operator(
        cluster=cluster,
        identity=release,
        namespace=namespace,
        log=tmp_path / "operator.log",
        args=[f"--namespace={namespace}", "--standalone"],
        trainer_command=None,
        # The node agent runs every pod with HF_HUB_OFFLINE=1; the Hub test pushes to a local stand-in.
        trainer_env={"KUBEFT_PROGRESS_INTERVAL": "0.5", "HF_HUB_OFFLINE": "0"},
        # S3 and the Hub stand-in listen on loopback here.
        env={"KUBEFT_ALLOW_PRIVATE_ENDPOINTS": "true"},
    )
    op.start()
    yield op
    op.stop()
    print(f"----- operator log -----\n{op.log()[-20000:]}")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tiny_models.build_causal_lm(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture
def job_manifest(cluster: Cluster, namespace: str, s3: S3, tiny_llama: pathlib.Path) -> Callable[..., dict[str, Any]]:
    """The demo example, with its data in this test's bucket and the model on a local "volume"."""
    s3.client.upload_file(str(REPO / "examples" / "data" / "chat.jsonl"), s3.bucket, "data/chat.jsonl")
    creds = s3.env()
    cluster.kubectl(
        "create", "secret", "generic", CREDENTIALS_SECRET, "-n", namespace,
        f"--from-literal=AWS_ACCESS_KEY_ID={creds['AWS_ACCESS_KEY_ID']}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={creds['AWS_SECRET_ACCESS_KEY']}",
    )  # fmt: skip

    def build(name: str = "demo", **spec: Any) -> dict[str, Any]:
        doc = copy.deepcopy(yaml.safe_load(DEMO.read_text()))
        doc["metadata"]["name"] = name
        body = doc["spec"]
        body["model"]["source"] = str(tiny_llama)
        body["dataset"]["source"] = s3.uri("data/chat.jsonl")
        body["storage"]["endpoint"] = s3.endpoint
        body["output"]["s3"]["uri"] = s3.uri("adapters", name)
        body["tensorboard"]["uri"] = s3.uri("tensorboard", name)
        for key, value in spec.items():
            if value is None:
                body.pop(key, None)
            elif isinstance(value, dict) and isinstance(body.get(key), dict):
                body[key] = {**body[key], **value}
            else:
                body[key] = value
        return doc

    return build


def pod_log(cluster: Cluster, namespace: str, pod: dict[str, Any]) -> str:
    """The trainer container's log, as kept by the node agent."""
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    path = cluster.dir / "pods" / f"{namespace}_{name}_{uid}" / "trainer.log"
    return path.read_text(errors="replace") if path.exists() else ""


def manifest_of(s3: S3, prefix: str) -> dict[str, Any]:
    return dict(json.loads(s3.read(f"{prefix}/manifest.json")))
