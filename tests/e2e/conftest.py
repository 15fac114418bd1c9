"""End-to-end fixtures: kubeft installed with Helm and running the way users run it, on the real node.

- ``release`` (session): ``helm install`` of charts/kubeft into its own namespace, with the
  operator Deployment at 1 replica running the locally built operator image (in-cluster config,
  the chart's ServiceAccount and RBAC) and watching the namespaces ``e2e-*``; trainer pods run
  the locally built trainer image on the node (hack/images.sh, hack/cluster.sh).
- ``namespace``: a fresh ``e2e-...`` namespace, so the release's operator handles it (and the
  operator integration tests' own operators, which watch ``t-...`` namespaces, never do). It
  enforces the ``restricted`` Pod Security Standard, as does the release's own namespace: the API
  server admits every pod kubeft creates there, or the tests fail.
- ``e2e_operator``: the release's operator pod, ready; its log is printed after each test.
- ``tiny_llama`` (session): a 2-layer Llama-style checkpoint built locally (hack/tiny_models.py).
- ``job_manifest``: examples/00-demo-tiny-lora.yaml pointed at the test's bucket, with the model
  uploaded there (a pod cannot read the test's files).
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
from tests.fixtures.cluster import REPO, RESTRICTED, Cluster, fresh_namespace, in_cluster_netns
from tests.fixtures.operator import Identity, Watcher
from tests.fixtures.s3 import S3

DEMO = REPO / "examples" / "00-demo-tiny-lora.yaml"
CREDENTIALS_SECRET = "demo-s3-credentials"
E2E_NAMESPACES = "e2e-*"


@pytest.fixture(scope="session")
def release(cluster: Cluster) -> Iterator[Identity]:
    assert in_cluster_netns(), (
        "the e2e tests start servers that trainer pods must reach: run them inside the cluster's network "
        "namespace (hack/test.sh does; or hack/cluster.sh exec python -m pytest tests/e2e)"
    )
    name = f"e2e{uuid.uuid4().hex[:6]}"
    system = f"{name}-system"
    helm = shutil.which("helm", path=cluster.env["PATH"])
    assert helm, "helm is not on PATH (hack/install-tools.sh installs it)"
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": system, "labels": RESTRICTED}})
    install = [helm, "install", name, str(REPO / "charts" / "kubeft"), "-n", system]
    values = [
        "--skip-crds",
        f"--set=operator.watchNamespaces[0]={E2E_NAMESPACES}",
        # The test servers (S3, the Hub stand-in) listen on the node's private address.
        "--set=operator.allowPrivateEndpoints=true",
        "--set-json=trainer.progressIntervalSeconds=0.5",
        "--set-string=trainer.env.HF_HUB_OFFLINE=0",
        # The local node advertises a fake nvidia.com/gpu and has no real one: jobs with gpus: 1 train on
        # its CPU, which the trainer's start-up GPU check refuses (GPUUnavailable) unless told so.
        "--set-string=trainer.env.KUBEFT_ALLOW_CPU_FALLBACK=1",
        # The fit estimate's verdict for jobs that ask for a GPU (test_fit_estimate.py); none runs on one here.
        '--set-json=trainer.gpuMemoryGiB={"nvidia.com/gpu": 16}',
        "--wait",
        "--timeout=180s",
    ]
    subprocess.run([*install, *values], env=cluster.env, check=True)
    try:
        (account,) = [
            sa["metadata"]["name"]
            for sa in cluster.get("serviceaccounts", "-n", system, "-l", f"app.kubernetes.io/instance={name}")["items"]
        ]
        yield Identity(namespace=system, service_account=account, kubeconfig=cluster.kubeconfig)
    finally:
        subprocess.run([helm, "uninstall", name, "-n", system, "--wait=false"], env=cluster.env, check=False)
        cluster.kubectl("delete", "namespace", system, "--wait=false", check=False)


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh ``e2e-`` namespace named after the test, which the release's operator watches."""
    yield from fresh_namespace(cluster, request, "e2e", labels=RESTRICTED)


def operator_pod(cluster: Cluster, release: Identity) -> dict[str, Any]:
    (pod,) = [
        p
        for p in cluster.get("pods", "-n", release.namespace)["items"]
        if p["metadata"].get("deletionTimestamp") is None
    ]
    return dict(pod)


@pytest.fixture
def e2e_operator(cluster: Cluster, release: Identity) -> Iterator[dict[str, Any]]:
    """The release's operator pod, Ready. Its log is printed when the test ends."""
    cluster.kubectl("rollout", "status", "deployment", "-n", release.namespace, "--timeout=120s", timeout=130)
    pod = operator_pod(cluster, release)
    yield pod
    log = cluster.logs(release.namespace, pod["metadata"]["name"], "--tail=300")
    print(f"----- operator log (kubectl logs {pod['metadata']['name']}) -----\n{log}")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tiny_models.build_causal_lm(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture
def job_manifest(cluster: Cluster, namespace: str, s3: S3, tiny_llama: pathlib.Path) -> Callable[..., dict[str, Any]]:
    """The demo example, with its data and model in this test's bucket."""
    s3.client.upload_file(str(REPO / "examples" / "data" / "chat.jsonl"), s3.bucket, "data/chat.jsonl")
    for path in sorted(p for p in tiny_llama.rglob("*") if p.is_file()):
        s3.client.upload_file(str(path), s3.bucket, f"models/tiny-llama/{path.relative_to(tiny_llama)}")
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
        body["model"]["source"] = s3.uri("models/tiny-llama")
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
    """The trainer container's log, from the kubelet (``kubectl logs``)."""
    return cluster.logs(namespace, pod["metadata"]["name"])


def manifest_of(s3: S3, prefix: str) -> dict[str, Any]:
    return dict(json.loads(s3.read(f"{prefix}/manifest.json")))


def long_run(
    job_manifest: Callable[..., dict[str, Any]], name: str, *, steps: int, checkpoint_steps: int
) -> dict[str, Any]:
    """A CPU job long enough to act on while it trains: `steps` steps of 128 tokens, no evaluation."""
    training = {"maxSteps": steps, "checkpointSteps": checkpoint_steps, "evaluation": {"strategy": "no"}}
    doc = job_manifest(name, resources={"gpus": 0}, training=training)
    doc["spec"]["dataset"]["maxLength"] = 128
    return doc


def wait_progress(
    cluster: Cluster, watch: Watcher, name: str, reached: Callable[[dict[str, Any]], bool], *, what: str
) -> dict[str, Any]:
    """The job's status.progress once `reached(progress)` holds (polled every 0.2 s, up to 300 s)."""

    def check() -> dict[str, Any] | None:
        progress = watch.status(name).get("progress") or {}
        return progress if reached(progress) else None

    return dict(cluster.wait_for(check, timeout=300, interval=0.2, what=what))
