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
import dataclasses
import json
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from tests.fixtures.cluster import REPO, Cluster

RESOURCES = REPO / "tests" / "resources" / "operator"
FAKE_TRAINER = REPO / "hack" / "fake_trainer.py"
READY_LINE = "kubeft operator started"


@dataclasses.dataclass(frozen=True)
class Identity:
    namespace: str
    service_account: str
    kubeconfig: pathlib.Path


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
        token = cluster.kubectl("create", "token", account, "-n", namespace, "--duration=6h").stdout.strip()
        admin = yaml.safe_load(cluster.kubeconfig.read_text())
        server = admin["clusters"][0]["cluster"]
        kubeconfig = tmp_path_factory.mktemp("operator") / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "local", "cluster": server}],
                    "users": [{"name": account, "user": {"token": token}}],
                    "contexts": [{"name": "operator", "context": {"cluster": "local", "user": account}}],
                    "current-context": "operator",
                }
            )
        )
        yield Identity(namespace=namespace, service_account=account, kubeconfig=kubeconfig)
    finally:
        for obj in objects:
            if obj["kind"] in ("ClusterRole", "ClusterRoleBinding"):
                cluster.kubectl("delete", obj["kind"], obj["metadata"]["name"], "--wait=false", check=False)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Operator:
    """The operator as a subprocess: start, SIGKILL, restart, read its metrics and log."""

    def __init__(
        self,
        *,
        cluster: Cluster,
        identity: Identity,
        namespace: str,
        log: pathlib.Path,
        args: list[str],
        env: dict[str, str],
    ):
        self.namespace = namespace
        self.log_path = log
        self.metrics_port = _free_port()
        self._args = args
        self._env = {
            **cluster.env,
            "KUBECONFIG": str(identity.kubeconfig),
            "KUBEFT_TRAINER_COMMAND": json.dumps(["python", str(FAKE_TRAINER)]),
            "KUBEFT_TRAINER_ENV": json.dumps({"KUBEFT_FAKE_STEP_SECONDS": "0.1", "KUBEFT_PROGRESS_INTERVAL": "0.5"}),
            "KUBEFT_METRICS_PORT": str(self.metrics_port),
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, *, wait: bool = True) -> None:
        assert self.proc is None or self.proc.poll() is not None, "the operator is already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.starts} =====\n".encode())
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kubeft_operator", *self._args],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        marker = f"===== start {self.starts} ====="
        while READY_LINE not in self.log().rpartition(marker)[2]:
            assert self.proc is not None and self.proc.poll() is None, f"operator exited:\n{self.log()[-4000:]}"
            assert time.monotonic() < deadline, f"operator not ready after {timeout}s:\n{self.log()[-4000:]}"
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no cleanup handlers, no graceful shutdown."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def metrics(self) -> dict[str, float]:
        """Samples of /metrics as {"name{labels}": value}."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def writes(self, *, kind: str | None = None, exclude: str | None = None) -> float:
        samples = self.metrics()
        return sum(
            value
            for key, value in samples.items()
            if key.startswith("kubeft_api_writes_total{")
            and (kind is None or f'kind="{kind}"' in key)
            and (exclude is None or f'kind="{exclude}"' not in key)
        )

    def rss_bytes(self) -> int:
        assert self.proc is not None
        for line in pathlib.Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")


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


class Watcher:
    """Reads a FineTuneJob and its children in one namespace."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace

    def ftj(self, name: str) -> dict[str, Any] | None:
        proc = self.cluster.kubectl("get", "finetunejob", name, "-n", self.namespace, "-o", "json", check=False)
        return json.loads(proc.stdout) if proc.returncode == 0 else None

    def status(self, name: str) -> dict[str, Any]:
        return (self.ftj(name) or {}).get("status") or {}

    def phase(self, name: str) -> str | None:
        return self.status(name).get("phase")

    def condition(self, name: str, type_: str) -> dict[str, Any]:
        return next((c for c in self.status(name).get("conditions", []) if c["type"] == type_), {})

    def wait_phase(self, name: str, phase: str, *, timeout: float = 60) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            status = self.status(name)
            if status.get("phase") in ("Succeeded", "Failed") and status.get("phase") != phase:
                raise AssertionError(f"{name} ended {status.get('phase')} instead of {phase}: {status}")
            return status if status.get("phase") == phase else None

        return self.cluster.wait_for(reached, timeout=timeout, what=f"{name} to be {phase}")

    def items(self, kind: str, name: str) -> list[dict[str, Any]]:
        out = self.cluster.get(kind, "-n", self.namespace, "-l", f"kubeft.io/job={name}")
        return list(out["items"])

    def events(self, name: str) -> list[dict[str, Any]]:
        out = self.cluster.get("events", "-n", self.namespace, "--field-selector", f"involvedObject.name={name}")
        return [e for e in out["items"] if e["involvedObject"].get("kind") == "FineTuneJob"]

    def event_reasons(self, name: str) -> list[str]:
        return [e["reason"] for e in sorted(self.events(name), key=lambda e: e["metadata"]["creationTimestamp"])]


@pytest.fixture
def watch(cluster: Cluster, namespace: str) -> Watcher:
    return Watcher(cluster, namespace)
