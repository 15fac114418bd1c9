"""Node agent of the local cluster: stands in for kubelet plus a container runtime, without images.

Started by hack/cluster.sh (one process serves every node it registers); tests import it to check the
node-spec syntax and env resolution. It

- registers the Nodes given by ``--node`` with their capacity (e.g. ``nvidia.com/gpu``), labels and
  taints, and keeps them Ready: a Lease renewal in ``kube-node-lease`` every 10 s and a Ready condition;
- watches the pods that the real scheduler binds to those nodes and runs each container's
  ``command``/``args`` as a local process in a private mount namespace, with the pod's ConfigMap,
  Secret, emptyDir, hostPath, downwardAPI and projected (service-account token) volumes
  materialised under ``--state-dir`` and bind-mounted at their ``mountPath``;
- reports pod status as kubelet does (phase, conditions, container states, exit codes, termination
  messages), restarts containers per ``restartPolicy`` and honours deletion (SIGTERM to the process
  group, SIGKILL after the grace period, then the final delete);
- serves ``/containerLogs`` to the API server, so ``kubectl logs`` works.

Standard library and PyYAML only.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import datetime
import decimal
import http.client
import http.server
import json
import logging
import math
import os
import pathlib
import platform
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import yaml

log = logging.getLogger("nodeagent")

AGENT_VERSION = "v1.35.4-kubeft"
LEASE_SECONDS = 40
LEASE_RENEW_SECONDS = 10
NODE_STATUS_SECONDS = 60
RETRY_SECONDS = 3.0
TERMINATION_MESSAGE_MAX = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
DEFAULT_MODE = 0o644
HOST_IP = "127.0.0.1"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

Obj = dict[str, Any]


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------------------------------------
# Quantities and the --node syntax
# ---------------------------------------------------------------------------------------------

_SUFFIXES = {
    "": 1,
    "m": decimal.Decimal("0.001"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")


def parse_quantity(text: str | int | float) -> decimal.Decimal:
    """A Kubernetes resource quantity ("500m", "2Gi", "1e3") as a number."""
    match = _QUANTITY.match(str(text).strip())
    if not match or match.group(2) not in _SUFFIXES:
        raise ValueError(f"invalid quantity {text!r}")
    return decimal.Decimal(match.group(1)) * decimal.Decimal(_SUFFIXES[match.group(2)])


@dataclasses.dataclass
class NodeSpec:
    """One node the agent registers: parsed from a ``--node`` value."""

    name: str
    resources: dict[str, str]
    labels: dict[str, str]
    taints: list[Obj]


NODE_SYNTAX = """\
NAME[:ITEM[,ITEM...]] where ',' or ':' separate items and each ITEM is one of
  RESOURCE=QUANTITY          capacity, e.g. cpu=8, memory=32Gi, pods=110, nvidia.com/gpu=2
  label.KEY=VALUE            a node label, e.g. label.nvidia.com/gpu.product=NVIDIA-H100
  taint.KEY[=VALUE]/EFFECT   a taint, e.g. taint.nvidia.com/gpu=present/NoSchedule
Unset cpu, memory and pods default to 8, 32Gi and 110.
Example: gpu-node-0:cpu=8,memory=32Gi,nvidia.com/gpu=2:label.nvidia.com/gpu.product=NVIDIA-H100"""


def parse_node_spec(text: str) -> NodeSpec:
    """Parses one ``--node`` value (syntax in NODE_SYNTAX)."""
    name, _, rest = text.strip().partition(":")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name):
        raise ValueError(f"node name {name!r} is not a valid DNS subdomain")
    spec = NodeSpec(name=name, resources={"cpu": "8", "memory": "32Gi", "pods": "110"}, labels={}, taints=[])
    for item in filter(None, re.split(r"[,:]", rest)):
        if item.startswith("taint."):
            body, sep, effect = item[len("taint.") :].rpartition("/")
            if not sep or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
                raise ValueError(f"taint {item!r} needs /NoSchedule, /PreferNoSchedule or /NoExecute")
            key, _, value = body.partition("=")
            spec.taints.append(
                {"key": key, "value": value, "effect": effect} if value else {"key": key, "effect": effect}
            )
            continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{item!r} in {text!r} is not KEY=VALUE")
        if key.startswith("label."):
            spec.labels[key[len("label.") :]] = value
        else:
            parse_quantity(value)
            spec.resources[key] = value
    return spec


# ---------------------------------------------------------------------------------------------
# API client (kubeconfig, JSON requests, watches)
# ---------------------------------------------------------------------------------------------


class ApiError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        try:
            self.message = json.loads(body).get("message", "")
        except ValueError:
            self.message = body[:200].decode(errors="replace")
        super().__init__(f"HTTP {status}: {self.message}")


class Api:
    """A minimal thread-safe Kubernetes client: one keep-alive HTTPS connection per thread."""

    def __init__(self, kubeconfig: pathlib.Path, *, scratch: pathlib.Path) -> None:
        cfg = yaml.safe_load(kubeconfig.read_text())
        context = _named(cfg["contexts"], cfg["current-context"])["context"]
        cluster = _named(cfg["clusters"], context["cluster"])["cluster"]
        user = _named(cfg["users"], context["user"])["user"]
        server = urllib.parse.urlsplit(cluster["server"])
        self.host = server.hostname or HOST_IP
        self.port = server.port or 443
        if "certificate-authority-data" in cluster:
            cadata = base64.b64decode(cluster["certificate-authority-data"]).decode()
            self.ssl = ssl.create_default_context(cadata=cadata)
        else:
            self.ssl = ssl.create_default_context(cafile=cluster.get("certificate-authority"))
        self.headers = {"Accept": "application/json", "User-Agent": f"kubeft-nodeagent/{AGENT_VERSION}"}
        if "token" in user:
            self.headers["Authorization"] = f"Bearer {user['token']}"
        cert, key = user.get("client-certificate"), user.get("client-key")
        if "client-certificate-data" in user:
            scratch.mkdir(parents=True, exist_ok=True)
            cert, key = str(scratch / "client.crt"), str(scratch / "client.key")
            for path, field in ((cert, "client-certificate-data"), (key, "client-key-data")):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(base64.b64decode(user[field]))
        if cert:
            self.ssl.load_cert_chain(cert, key)
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPSConnection:
        conn: http.client.HTTPSConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection(self.host, self.port, context=self.ssl, timeout=30)
            self._local.conn = conn
        return conn

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Obj:
        url = path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self.headers, **({"Content-Type": content_type} if data is not None else {}))
        for attempt in range(2):
            conn = self._connection()
            try:
                conn.request(method, url, body=data, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
        if resp.status >= 400:
            raise ApiError(resp.status, payload)
        return json.loads(payload) if payload else {}

    def get(self, path: str, **query: Any) -> Obj:
        return self.request("GET", path, query=query or None)

    def merge_patch(self, path: str, body: Obj) -> Obj:
        return self.request("PATCH", path, body=body, content_type="application/merge-patch+json")

    def watch(self, path: str, **query: Any) -> Iterator[Obj]:
        """Yields watch events until the server ends the stream; the caller re-lists on error."""
        timeout = int(query.setdefault("timeoutSeconds", 300)) + 30
        query["watch"] = "true"
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ssl, timeout=timeout)
        try:
            conn.request("GET", path + "?" + urllib.parse.urlencode(query), headers=self.headers)
            resp = conn.getresponse()
            if resp.status != 200:
                raise ApiError(resp.status, resp.read())
            for line in resp:
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()


def follow(api: Api, path: str, *, stop: threading.Event, on_list: Any, on_event: Any, **query: Any) -> None:
    """List, then watch, PATH until stop: on_list(items) after every (re-)list, on_event(type, obj) per change.

    Any error or the end of a watch leads to a fresh list, so nothing is missed across reconnects.
    """
    while not stop.is_set():
        try:
            listing = api.get(path, **query)
            on_list(listing["items"])
            version = listing["metadata"]["resourceVersion"]
            for event in api.watch(path, resourceVersion=version, allowWatchBookmarks="true", **query):
                if event["type"] == "ERROR":
                    log.info("watch of %s ended: %s", path, event["object"].get("message"))
                    break
                if event["type"] != "BOOKMARK":
                    on_event(event["type"], event["object"])
        except Exception as e:
            log.warning("watch of %s failed (%s); re-listing", path, e)
            stop.wait(2)


def _named(items: list[Obj], name: str) -> Obj:
    for item in items:
        if item["name"] == name:
            return item
    raise KeyError(f"kubeconfig has no entry named {name!r}")


# ---------------------------------------------------------------------------------------------
# Nodes: registration, heartbeats, GPU ids
# ---------------------------------------------------------------------------------------------


class Nodes:
    """Registers the configured Nodes, keeps them Ready, and hands out their GPU indices."""

    def __init__(self, api: Api, specs: list[NodeSpec], *, port: int) -> None:
        self.api = api
        self.specs = {s.name: s for s in specs}
        self.port = port
        self.uids: dict[str, str] = {}
        self.ready_since = now()
        self._gpus_lock = threading.Lock()
        self._gpus_free = {
            s.name: list(range(int(parse_quantity(s.resources.get("nvidia.com/gpu", 0))))) for s in specs
        }
        self._gpus_held: dict[str, tuple[str, list[int]]] = {}

    def register(self) -> None:
        for spec in self.specs.values():
            path = f"/api/v1/nodes/{spec.name}"
            labels = {
                "kubernetes.io/hostname": spec.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubeft.io/node-agent": "true",
                **spec.labels,
            }
            try:
                node = self.api.get(path)
            except ApiError as e:
                if e.status != 404:
                    raise
                node = self.api.request(
                    "POST",
                    "/api/v1/nodes",
                    body={"apiVersion": "v1", "kind": "Node", "metadata": {"name": spec.name, "labels": labels}},
                )
            kept = [t for t in node["spec"].get("taints", []) if t["key"].startswith("node.kubernetes.io/")]
            node = self.api.merge_patch(path, {"metadata": {"labels": labels}, "spec": {"taints": kept + spec.taints}})
            self.uids[spec.name] = node["metadata"]["uid"]
            self.report_status(spec)
            self.renew_lease(spec.name)
            log.info("node %s registered: %s", spec.name, spec.resources)

    def report_status(self, spec: NodeSpec) -> None:
        heartbeat = now()

        def condition(kind: str, status: str, reason: str, message: str) -> Obj:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": heartbeat,
                "lastTransitionTime": self.ready_since,
            }

        status = {
            "capacity": spec.resources,
            "allocatable": spec.resources,
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "node agent: no memory pressure"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "node agent: no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "node agent: no PID pressure"),
                condition("Ready", "True", "KubeletReady", "kubeft node agent is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": HOST_IP}, {"type": "Hostname", "address": spec.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "nodeInfo": {
                "machineID": spec.name,
                "systemUUID": spec.name,
                "bootID": self.ready_since,
                "kernelVersion": platform.release(),
                "osImage": "kubeft node agent (local processes)",
                "containerRuntimeVersion": "kubeft-nodeagent://0.1.0",
                "kubeletVersion": AGENT_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }
        self.api.merge_patch(f"/api/v1/nodes/{spec.name}/status", {"status": status})

    def renew_lease(self, name: str) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
        spec = {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now_micro()}
        try:
            self.api.merge_patch(path, {"spec": spec})
        except ApiError as e:
            if e.status != 404:
                raise
            owner = {"apiVersion": "v1", "kind": "Node", "name": name, "uid": self.uids[name]}
            lease = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease", "ownerReferences": [owner]},
                "spec": spec,
            }
            self.api.request("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", body=lease)

    def heartbeat_forever(self, stop: threading.Event) -> None:
        last_status = time.monotonic()
        while not stop.wait(LEASE_RENEW_SECONDS):
            try:
                for name in self.specs:
                    self.renew_lease(name)
                if time.monotonic() - last_status >= NODE_STATUS_SECONDS:
                    for spec in self.specs.values():
                        self.report_status(spec)
                    last_status = time.monotonic()
            except ApiError as e:
                if e.status == 404:  # a node was deleted under us: register it again
                    with contextlib.suppress(Exception):
                        self.register()
                log.warning("heartbeat failed: %s", e)
            except Exception as e:
                log.warning("heartbeat failed: %s", e)

    def take_gpus(self, node: str, owner: str, count: int) -> list[int]:
        """GPU indices for a container (owner = pod uid/container), as a device plugin would assign."""
        with self._gpus_lock:
            if owner in self._gpus_held:
                return self._gpus_held[owner][1]
            free = self._gpus_free.get(node, [])
            taken, self._gpus_free[node] = free[:count], free[count:]
            self._gpus_held[owner] = (node, taken)
            return taken

    def release_gpus(self, owner_prefix: str) -> None:
        with self._gpus_lock:
            for owner in [o for o in self._gpus_held if o.startswith(owner_prefix)]:
                node, ids = self._gpus_held.pop(owner)
                self._gpus_free[node] = sorted(self._gpus_free[node] + ids)


# ---------------------------------------------------------------------------------------------
# Per-pod configuration: env and volumes
# ---------------------------------------------------------------------------------------------


class ConfigError(Exception):
    """A referenced Secret/ConfigMap (or key) is missing: kubelet's CreateContainerConfigError."""


class MountError(Exception):
    """A volume cannot be set up yet (missing source, unsupported type): the pod stays ContainerCreating."""


def _decode(kind: str, obj: Obj) -> dict[str, bytes]:
    if kind == "Secret":
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    out = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    out.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return out


class Sources:
    """Reads the Secrets and ConfigMaps of one namespace, with kubelet's error messages."""

    def __init__(self, api: Api, namespace: str) -> None:
        self.api = api
        self.namespace = namespace

    def fetch(self, kind: str, name: str) -> dict[str, bytes] | None:
        resource = "secrets" if kind == "Secret" else "configmaps"
        try:
            return _decode(kind, self.api.get(f"/api/v1/namespaces/{self.namespace}/{resource}/{name}"))
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def require(self, kind: str, name: str, *, optional: bool) -> dict[str, bytes] | None:
        data = self.fetch(kind, name)
        if data is None and not optional:
            raise ConfigError(f'{"secret" if kind == "Secret" else "configmap"} "{name}" not found')
        return data

    def key(self, kind: str, ref: Obj) -> str | None:
        data = self.require(kind, ref["name"], optional=bool(ref.get("optional")))
        if data is None:
            return None
        if ref["key"] not in data:
            if ref.get("optional"):
                return None
            raise ConfigError(f"couldn't find key {ref['key']} in {kind} {self.namespace}/{ref['name']}")
        return data[ref["key"]].decode(errors="replace")


def field_value(pod: Obj, path: str) -> str:
    """The downward API's fieldRef values."""
    meta, spec = pod["metadata"], pod["spec"]
    simple = {
        "metadata.name": meta["name"],
        "metadata.namespace": meta["namespace"],
        "metadata.uid": meta["uid"],
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": HOST_IP,
        "status.podIPs": HOST_IP,
        "status.hostIP": HOST_IP,
        "status.hostIPs": HOST_IP,
        "metadata.labels": "\n".join(f'{k}="{v}"' for k, v in sorted((meta.get("labels") or {}).items())),
        "metadata.annotations": "\n".join(f'{k}="{v}"' for k, v in sorted((meta.get("annotations") or {}).items())),
    }
    if path in simple:
        return simple[path]
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise ConfigError(f"unsupported fieldRef fieldPath {path!r}")


def resource_value(pod: Obj, ref: Obj, default_container: str | None) -> str:
    """The downward API's resourceFieldRef: the container's limit (or request), divided and rounded up."""
    name = ref.get("containerName") or default_container
    container = next((c for c in pod["spec"]["containers"] if c["name"] == name), None)
    if container is None:
        raise ConfigError(f"resourceFieldRef names unknown container {name!r}")
    kind, _, resource = ref["resource"].partition(".")
    resources = container.get("resources") or {}
    raw = (resources.get(kind) or {}).get(resource) or (resources.get("limits") or {}).get(resource)
    if raw is None:  # unlimited: kubelet reports the node's allocatable; there is no such bound here
        raw = str(os.cpu_count()) if resource == "cpu" else "0"
    value = parse_quantity(raw) / parse_quantity(ref.get("divisor") or "1")
    return str(math.ceil(value))


_VAR_REF = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined names are replaced, $$ escapes, unknown refs stay as written."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_REF.sub(sub, text)


def container_env(pod: Obj, container: Obj, sources: Sources, base: dict[str, str]) -> dict[str, str]:
    """The container's environment in kubelet's order: base, envFrom, then env (later wins)."""
    env = dict(base)
    for source in container.get("envFrom") or []:
        kind, ref = ("Secret", source["secretRef"]) if "secretRef" in source else ("ConfigMap", source["configMapRef"])
        data = sources.require(kind, ref["name"], optional=bool(ref.get("optional"))) or {}
        for key, value in data.items():
            if "=" not in key:
                env[source.get("prefix", "") + key] = value.decode(errors="replace")
    for var in container.get("env") or []:
        if "valueFrom" not in var:
            env[var["name"]] = expand(var.get("value", ""), env)
            continue
        ref = var["valueFrom"]
        value: str | None
        if "secretKeyRef" in ref:
            value = sources.key("Secret", ref["secretKeyRef"])
        elif "configMapKeyRef" in ref:
            value = sources.key("ConfigMap", ref["configMapKeyRef"])
        elif "fieldRef" in ref:
            value = field_value(pod, ref["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in ref:
            value = resource_value(pod, ref["resourceFieldRef"], container["name"])
        else:
            raise ConfigError(f"unsupported valueFrom in env {var['name']}")
        if value is not None:
            env[var["name"]] = value
    return env


def write_files(directory: pathlib.Path, files: dict[str, tuple[bytes, int]]) -> None:
    for rel, (content, mode) in files.items():
        path = directory / rel
        if ".." in pathlib.PurePosixPath(rel).parts:
            raise MountError(f"path {rel!r} must not contain '..'")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)


def _select(data: dict[str, bytes], items: list[Obj] | None, mode: int, *, what: str) -> dict[str, tuple[bytes, int]]:
    if not items:
        return {k: (v, mode) for k, v in data.items()}
    out = {}
    for item in items:
        if item["key"] not in data:
            raise MountError(f"configmap/secret {what}: key {item['key']!r} not found")
        out[item["path"]] = (data[item["key"]], item.get("mode", mode))
    return out


# ---------------------------------------------------------------------------------------------
# Pods
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    """One container of a pod: its current process (if any) and what kubelet would report for it."""

    spec: Obj
    init: bool
    state: Obj = dataclasses.field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Obj = dataclasses.field(default_factory=dict)
    restarts: int = 0
    instances: int = 0
    proc: subprocess.Popen[bytes] | None = None
    group: int = 0  # process group of the current or last instance, while it may have members left
    exited_at: str = ""
    next_start: float = 0.0
    backoff: float = 0.0
    final: bool = False  # terminated and not to be restarted
    reported_error: str = ""

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def running(self) -> bool:
        return self.proc is not None

    def signal_group(self, sig: int) -> bool:
        """Sends sig to the container's process group; False when the group has no process left."""
        if not self.group:
            return False
        try:
            os.killpg(self.group, sig)
        except (ProcessLookupError, PermissionError):
            self.group = 0
            return False
        return True


class PodWorker:
    """Owns one pod bound to one of our nodes: volumes, processes, status, deletion. One thread each."""

    def __init__(self, agent: Agent, pod: Obj) -> None:
        self.agent = agent
        self.api = agent.api
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.ns: str = meta["namespace"]
        self.name: str = meta["name"]
        self.dir = agent.state_dir / f"{self.ns}_{self.name}_{self.uid}"
        self.pod: Obj | None = pod
        self.wake = threading.Event()
        self.lock = threading.Lock()
        spec = pod["spec"]
        self.runs = [Run(spec=c, init=True) for c in spec.get("initContainers") or []]
        self.runs += [Run(spec=c, init=False) for c in spec["containers"]]
        self.volumes: dict[str, pathlib.Path] | None = None
        self.tokens: list[tuple[pathlib.Path, Obj, float]] = []  # (file, projection, refresh at)
        self.volume_error = ""
        self.start_time = ""
        self.terminal = False
        self.term_started: float | None = None
        self.delete_sent = False
        self.last_status: Obj | None = None
        self.transitions: dict[str, tuple[str, str]] = {}
        self.events_sent: set[str] = set()
        self.adopted = False
        self.thread = threading.Thread(target=self.loop, name=f"pod-{self.ns}/{self.name}", daemon=True)

    # -- wiring ------------------------------------------------------------------------------

    def update(self, pod: Obj | None) -> None:
        with self.lock:
            self.pod = pod
        self.wake.set()

    def loop(self) -> None:
        while True:
            delay = RETRY_SECONDS
            try:
                delay = self.step()
            except Exception:
                log.exception("pod %s/%s: step failed; retrying", self.ns, self.name)
            if delay is None:
                break
            self.wake.wait(timeout=delay)
            self.wake.clear()
        self.agent.forget(self.uid)

    def step(self) -> float | None:
        """One reconcile pass; returns seconds until the next pass, or None when the pod is gone."""
        with self.lock:
            pod = self.pod
        if pod is None:
            self.kill_all(signal.SIGKILL)
            self.cleanup()
            return None
        if not self.adopted:
            self.adopt(pod)
        for run in self.runs:
            self.reap(run)
        if pod["metadata"].get("deletionTimestamp"):
            return self.terminate(pod)
        delay = 60.0
        if not self.terminal:
            delay = self.advance(pod)
        self.push_status(pod)
        return delay

    # -- lifecycle -----------------------------------------------------------------------------

    def adopt(self, pod: Obj) -> None:
        """First sight of the pod. After an agent restart its old processes are gone: say so, as kubelet does."""
        self.adopted = True
        status = pod.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            self.terminal = True
            self.last_status = None
            for run in self.runs:
                run.final = True
                run.state = {}
            self.cleanup()
            return
        previous = {
            s["name"]: s for s in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
        }
        for run in self.runs:
            old = previous.get(run.name) or {}
            old_state = old.get("state") or {}
            run.restarts = old.get("restartCount", 0)
            run.last_state = old.get("lastState") or {}
            if "terminated" in old_state:
                run.state = old_state
            elif "running" in old_state:
                run.state = {
                    "terminated": {
                        "exitCode": 137,
                        "reason": "ContainerStatusUnknown",
                        "message": "The container could not be located when the node agent restarted",
                        "startedAt": old_state["running"].get("startedAt"),
                        "finishedAt": now(),
                    }
                }
            else:
                continue
            run.instances = 1
            self.decide_restart(pod, run)
        self.start_time = status.get("startTime", "")

    def advance(self, pod: Obj) -> float:
        if self.phase(pod) in ("Succeeded", "Failed"):
            self.terminal = True
            self.kill_all(signal.SIGKILL)  # leftovers of exited containers' process groups
            self.cleanup()
            return 60.0
        if self.volumes is None:
            try:
                self.volumes = self.prepare_volumes(pod)
                self.volume_error = ""
            except MountError as e:
                if e.args[0] != self.volume_error:
                    self.event(pod, "FailedMount", e.args[0], warning=True)
                self.volume_error = e.args[0]
                return RETRY_SECONDS
        delay = self.refresh_tokens(pod)
        self.start_time = self.start_time or now()
        for run in [r for r in self.runs if r.init]:
            if run.final and run.state.get("terminated", {}).get("exitCode") == 0:
                continue
            if run.final:  # a failed init container with restartPolicy Never fails the pod
                break
            if not run.running:
                delay = min(delay, self.start_or_wait(pod, run))
            break
        else:
            for run in [r for r in self.runs if not r.init]:
                if not run.running and not run.final:
                    delay = min(delay, self.start_or_wait(pod, run))
        if self.phase(pod) in ("Succeeded", "Failed"):
            return 0.0  # the next pass finishes the pod
        return delay

    def start_or_wait(self, pod: Obj, run: Run) -> float:
        wait = run.next_start - time.monotonic()
        if wait > 0:
            return wait
        try:
            self.start(pod, run)
        except ConfigError as e:
            message = str(e)
            run.state = {"waiting": {"reason": "CreateContainerConfigError", "message": message}}
            if message != run.reported_error:
                self.event(pod, "Failed", f"Error: {message}", warning=True)
                run.reported_error = message
            return RETRY_SECONDS
        return 60.0

    def decide_restart(self, pod: Obj, run: Run) -> None:
        """After a container terminated: restart it (with back-off) or mark it final, per restartPolicy."""
        code = run.state["terminated"]["exitCode"]
        policy = pod["spec"].get("restartPolicy", "Always")
        if policy == "Never" or ((policy == "OnFailure" or run.init) and code == 0):
            run.final = True
            return
        run.backoff = min(max(run.backoff * 2, self.agent.backoff), 60.0)
        run.next_start = time.monotonic() + run.backoff
        run.last_state = run.state
        run.state = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {run.backoff:g}s restarting failed container={run.name} pod={self.name}",
            }
        }

    def reap(self, run: Run) -> None:
        if run.proc is None or run.proc.poll() is None:
            return
        code = run.proc.returncode
        code = 128 - code if code < 0 else code
        run.proc = None
        with self.lock:
            deleting = bool(self.pod and self.pod["metadata"].get("deletionTimestamp"))
        if not deleting:
            # The container ends with its main process, as when a pid namespace's init exits. While the
            # pod is being deleted, the rest of the group keeps its grace period (e.g. to save a checkpoint).
            run.signal_group(signal.SIGKILL)
        with contextlib.suppress(FileNotFoundError):
            (self.dir / f"{run.name}.pid").unlink()
        started = run.state.get("running", {}).get("startedAt", "")
        run.state = {
            "terminated": {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": started,
                "finishedAt": run.exited_at or now(),
                "containerID": self.container_id(run),
            }
        }
        message = self.termination_message(run, code)
        if message:
            run.state["terminated"]["message"] = message
        log.info("pod %s/%s container %s exited %d", self.ns, self.name, run.name, code)
        if deleting:
            run.final = True
        elif self.pod is not None:
            self.decide_restart(self.pod, run)

    def terminate(self, pod: Obj) -> float | None:
        """Deletion: SIGTERM, SIGKILL after the grace period, final status, then the grace-0 delete."""
        running = [r for r in self.runs if r.running or r.signal_group(0)]
        if running:
            grace = pod["metadata"].get("deletionGracePeriodSeconds")
            grace = 30 if grace is None else int(grace)
            if self.term_started is None:
                self.term_started = time.monotonic()
                for run in running:
                    self.event(pod, "Killing", f"Stopping container {run.name}")
                self.kill_all(signal.SIGTERM)
            # A later delete may shorten the grace period (kubectl delete --force): the new value counts.
            left = self.term_started + grace - time.monotonic()
            if left > 0:
                return min(left, 0.5)
            self.kill_all(signal.SIGKILL)
            return 0.2
        for run in self.runs:
            run.final = True
            if "terminated" not in run.state and not self.terminal and "terminated" in run.last_state:
                run.state, run.last_state = run.last_state, {}
            elif "terminated" not in run.state and not self.terminal:
                run.state = {
                    "terminated": {
                        "exitCode": 137,
                        "reason": "ContainerStatusUnknown",
                        "message": "The container could not be located when the pod was terminated",
                        "finishedAt": now(),
                    }
                }
        self.terminal = True
        self.agent.nodes.release_gpus(self.uid)
        self.push_status(pod)
        if not self.delete_sent:
            try:
                self.api.request(
                    "DELETE",
                    f"/api/v1/namespaces/{self.ns}/pods/{self.name}",
                    body={
                        "apiVersion": "v1",
                        "kind": "DeleteOptions",
                        "gracePeriodSeconds": 0,
                        "preconditions": {"uid": self.uid},
                    },
                )
            except ApiError as e:
                if e.status not in (404, 409):
                    raise
            self.delete_sent = True
            self.cleanup()
        return 60.0

    def kill_all(self, sig: int) -> None:
        for run in self.runs:
            run.signal_group(sig)

    def cleanup(self) -> None:
        """Removes the pod's materialised volumes (secrets included); container logs stay."""
        self.agent.nodes.release_gpus(self.uid)
        shutil.rmtree(self.dir / "volumes", ignore_errors=True)
        for pattern in ("*.sh", "*.termination-log", "*.pid"):
            for path in self.dir.glob(pattern):
                path.unlink(missing_ok=True)

    # -- volumes -------------------------------------------------------------------------------

    def prepare_volumes(self, pod: Obj) -> dict[str, pathlib.Path]:
        sources = Sources(self.api, self.ns)
        root = self.dir / "volumes"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        self.dir.chmod(0o700)
        out: dict[str, pathlib.Path] = {}
        self.tokens = []
        for volume in pod["spec"].get("volumes") or []:
            name = volume["name"]
            target = root / name
            if "hostPath" in volume:
                host = pathlib.Path(volume["hostPath"]["path"])
                kind = volume["hostPath"].get("type", "")
                if kind == "DirectoryOrCreate":
                    host.mkdir(parents=True, exist_ok=True)
                elif kind == "FileOrCreate" and not host.exists():
                    host.parent.mkdir(parents=True, exist_ok=True)
                    host.touch()
                elif not host.exists() and kind:
                    raise MountError(f'MountVolume.SetUp failed for volume "{name}" : hostPath {host} does not exist')
                out[name] = host
                continue
            if "persistentVolumeClaim" in volume:
                out[name] = self.claim_path(volume["persistentVolumeClaim"]["claimName"], volume=name)
                continue
            target.mkdir()
            out[name] = target
            try:
                if "emptyDir" in volume:
                    continue
                if "configMap" in volume or "secret" in volume:
                    self.write_projection(pod, target, [volume], sources, volume_mode(volume))
                elif "downwardAPI" in volume or "projected" in volume:
                    if "projected" in volume:
                        projections = volume["projected"].get("sources") or []
                        mode = volume["projected"].get("defaultMode", DEFAULT_MODE)
                    else:
                        projections, mode = [volume], volume["downwardAPI"].get("defaultMode", DEFAULT_MODE)
                    self.write_projection(pod, target, projections, sources, mode)
                else:
                    kind = next((k for k in volume if k != "name"), "unknown")
                    raise MountError(f'volume "{name}": type {kind} is not supported by the kubeft node agent')
            except ConfigError as e:
                raise MountError(f'MountVolume.SetUp failed for volume "{name}" : {e}') from e
        return out

    def claim_path(self, claim: str, *, volume: str) -> pathlib.Path:
        """The directory behind a bound claim: its PV's hostPath (or local) path."""
        failed = f'MountVolume.SetUp failed for volume "{volume}" :'
        try:
            pvc = self.api.get(f"/api/v1/namespaces/{self.ns}/persistentvolumeclaims/{claim}")
        except ApiError as e:
            if e.status == 404:
                raise MountError(f'{failed} persistentvolumeclaim "{claim}" not found') from e
            raise
        bound = pvc["spec"].get("volumeName")
        if not bound or pvc.get("status", {}).get("phase") != "Bound":
            raise MountError(f'{failed} persistentvolumeclaim "{claim}" is not bound yet')
        spec = self.api.get(f"/api/v1/persistentvolumes/{bound}")["spec"]
        source = spec.get("hostPath") or spec.get("local")
        if not source:
            raise MountError(f"{failed} persistentvolume {bound} is neither hostPath nor local")
        path = pathlib.Path(source["path"])
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write_projection(
        self, pod: Obj, target: pathlib.Path, projections: list[Obj], sources: Sources, mode: int
    ) -> None:
        files: dict[str, tuple[bytes, int]] = {}
        for source in projections:
            if "configMap" in source or "secret" in source:
                kind = "ConfigMap" if "configMap" in source else "Secret"
                ref = source["configMap"] if kind == "ConfigMap" else source["secret"]
                name = ref["name"] if kind == "ConfigMap" else ref.get("secretName", ref.get("name"))
                data = sources.require(kind, name, optional=bool(ref.get("optional")))
                if data is not None:
                    files.update(_select(data, ref.get("items"), mode, what=f"{self.ns}/{name}"))
            elif "downwardAPI" in source:
                for item in source["downwardAPI"].get("items") or []:
                    if "fieldRef" in item:
                        value = field_value(pod, item["fieldRef"]["fieldPath"])
                    else:
                        value = resource_value(pod, item["resourceFieldRef"], None)
                    files[item["path"]] = (value.encode(), item.get("mode", mode))
            elif "serviceAccountToken" in source:
                projection = source["serviceAccountToken"]
                token, refresh_in = self.request_token(pod, projection)
                files[projection["path"]] = (token.encode(), mode)
                self.tokens.append((target / projection["path"], projection, time.monotonic() + refresh_in))
            else:
                raise MountError(f"projected source {sorted(source)} is not supported by the kubeft node agent")
        write_files(target, files)

    def request_token(self, pod: Obj, projection: Obj) -> tuple[str, float]:
        sa = pod["spec"].get("serviceAccountName") or "default"
        spec: Obj = {
            "expirationSeconds": int(projection.get("expirationSeconds", 3600)),
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.name, "uid": self.uid},
        }
        if projection.get("audience"):
            spec["audiences"] = [projection["audience"]]
        try:
            answer = self.api.request(
                "POST",
                f"/api/v1/namespaces/{self.ns}/serviceaccounts/{sa}/token",
                body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
            )
        except ApiError as e:
            raise MountError(f"failed to fetch token for service account {sa}: {e.message}") from e
        expires = datetime.datetime.fromisoformat(answer["status"]["expirationTimestamp"].replace("Z", "+00:00"))
        ttl = (expires - datetime.datetime.now(datetime.UTC)).total_seconds()
        return answer["status"]["token"], max(ttl * 0.8, 60.0)  # kubelet refreshes at 80% of the lifetime

    def refresh_tokens(self, pod: Obj) -> float:
        delay = 60.0
        for i, (path, projection, due) in enumerate(self.tokens):
            if time.monotonic() >= due:
                try:
                    token, refresh_in = self.request_token(pod, projection)
                except MountError as e:
                    log.warning("pod %s/%s: token refresh failed: %s", self.ns, self.name, e)
                    continue
                tmp = path.with_name(f".{path.name}.tmp")
                tmp.write_text(token)
                tmp.chmod(path.stat().st_mode & 0o7777)
                os.replace(tmp, path)
                self.tokens[i] = (path, projection, time.monotonic() + refresh_in)
                due = self.tokens[i][2]
            delay = min(delay, max(due - time.monotonic(), 1.0))
        return delay

    # -- processes -----------------------------------------------------------------------------

    def container_id(self, run: Run) -> str:
        return f"kubeft://{self.uid}/{run.name}/{run.restarts}"

    def start(self, pod: Obj, run: Run) -> None:
        assert self.volumes is not None
        spec = run.spec
        sources = Sources(self.api, self.ns)
        env = container_env(pod, spec, sources, self.base_env(pod, spec))
        argv = [expand(a, env) for a in (spec.get("command") or []) + (spec.get("args") or [])]
        if not argv:
            raise ConfigError(f"container {run.name} has no command or args (the node agent runs no images)")
        mounts = self.mounts(spec, env)
        script = self.dir / f"{run.name}.sh"
        script.write_text(mount_script(mounts, workdir=spec.get("workingDir") or "/"))
        logfile = self.dir / f"{run.name}.log"
        if run.instances:
            run.restarts += 1
            with contextlib.suppress(FileNotFoundError):
                os.replace(logfile, self.dir / f"{run.name}.previous.log")
        run.instances += 1
        with open(logfile, "ab") as out:
            run.proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "/bin/sh", str(script), *argv],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd="/",
            )
        started = now()
        (self.dir / f"{run.name}.pid").write_text(f"{run.proc.pid} {process_start_time(run.proc.pid)}\n")
        run.state = {"running": {"startedAt": started}}
        run.group = run.proc.pid  # start_new_session: the container's main process leads its own group
        run.exited_at = ""
        run.reported_error = ""
        proc = run.proc
        threading.Thread(target=self.wait_exit, args=(run, proc), daemon=True).start()
        self.event(pod, "Started", f"Started container {run.name}")
        log.info("pod %s/%s container %s started: pid %d %s", self.ns, self.name, run.name, proc.pid, argv)

    def wait_exit(self, run: Run, proc: subprocess.Popen[bytes]) -> None:
        proc.wait()
        if run.proc is proc:
            run.exited_at = now()
        self.wake.set()

    def base_env(self, pod: Obj, spec: Obj) -> dict[str, str]:
        env = {
            "PATH": self.agent.pod_path,
            "HOME": os.environ.get("HOME", "/root"),
            "HOSTNAME": pod["spec"].get("hostname") or self.name,
            "KUBERNETES_SERVICE_HOST": self.api.host,
            "KUBERNETES_SERVICE_PORT": str(self.api.port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(self.api.port),
            "KUBERNETES_PORT": f"tcp://{self.api.host}:{self.api.port}",
        }
        env.update(self.agent.pod_env)
        limits = (spec.get("resources") or {}).get("limits") or {}
        gpus = int(parse_quantity(limits.get("nvidia.com/gpu", 0)))
        if gpus:
            ids = self.agent.nodes.take_gpus(pod["spec"]["nodeName"], f"{self.uid}/{spec['name']}", gpus)
            env["NVIDIA_VISIBLE_DEVICES"] = ",".join(map(str, ids))
        return env

    def mounts(self, spec: Obj, env: dict[str, str]) -> list[tuple[pathlib.Path, str, bool]]:
        """(source, mountPath, read-only) for each volumeMount plus the termination-message file."""
        assert self.volumes is not None
        out = []
        for mount in spec.get("volumeMounts") or []:
            if mount["name"] not in self.volumes:
                raise ConfigError(f"volumeMount {mount['name']!r} has no matching volume")
            source = self.volumes[mount["name"]]
            sub = mount.get("subPath") or expand(mount.get("subPathExpr", ""), env)
            if sub:
                if ".." in pathlib.PurePosixPath(sub).parts:
                    raise ConfigError(f"subPath {sub!r} must not contain '..'")
                source = source / sub
                if not source.exists():
                    source.mkdir(parents=True)
            read_only = bool(mount.get("readOnly")) or self.read_only_volume(mount["name"])
            out.append((source, mount["mountPath"], read_only))
        message_file = self.dir / f"{spec['name']}.termination-log"
        message_file.write_bytes(b"")
        out.append((message_file, spec.get("terminationMessagePath") or "/dev/termination-log", False))
        return sorted(out, key=lambda m: m[1].rstrip("/").count("/"))

    def read_only_volume(self, name: str) -> bool:
        with self.lock:
            volumes = (self.pod or {}).get("spec", {}).get("volumes") or []
        volume = next((v for v in volumes if v["name"] == name), {})
        if volume.get("persistentVolumeClaim", {}).get("readOnly"):
            return True
        return any(k in volume for k in ("configMap", "secret", "projected", "downwardAPI"))

    def termination_message(self, run: Run, code: int) -> str:
        path = self.dir / f"{run.name}.termination-log"
        try:
            with open(path, "rb") as f:
                message = f.read(TERMINATION_MESSAGE_MAX).decode(errors="replace")
        except FileNotFoundError:
            message = ""
        if not message and code != 0 and run.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            message = tail_file(self.dir / f"{run.name}.log", lines=FALLBACK_LOG_LINES, limit=FALLBACK_LOG_BYTES)
        return message

    # -- status --------------------------------------------------------------------------------

    def phase(self, pod: Obj) -> str:
        inits = [r for r in self.runs if r.init]
        mains = [r for r in self.runs if not r.init]
        if any(r.final and r.state.get("terminated", {}).get("exitCode") != 0 for r in inits):
            return "Failed"
        if not all(r.final for r in inits):
            return "Pending"
        if any(not r.running and "terminated" not in r.state and not r.last_state for r in mains):
            return "Pending"  # kubelet: a container that never ran keeps the pod Pending
        if all(r.final for r in mains):
            failed = any(r.state.get("terminated", {}).get("exitCode") != 0 for r in mains)
            return "Failed" if failed else "Succeeded"
        return "Running"

    def condition(self, kind: str, ok: bool, reason: str = "", message: str = "") -> Obj:
        status = "True" if ok else "False"
        previous = self.transitions.get(kind)
        if previous is None or previous[0] != status:
            self.transitions[kind] = (status, now())
        out = {"type": kind, "status": status, "lastTransitionTime": self.transitions[kind][1]}
        if reason:
            out["reason"] = reason
        if message:
            out["message"] = message
        return out

    def status(self, pod: Obj) -> Obj:
        phase = self.phase(pod)
        mains = [r for r in self.runs if not r.init]
        inits = [r for r in self.runs if r.init]
        done = phase in ("Succeeded", "Failed")
        unready = [r.name for r in mains if not r.running]
        not_ready_reason = "PodCompleted" if done else "ContainersNotReady"
        not_ready_message = "" if done else f"containers with unready status: [{' '.join(unready)}]"
        init_done = all(r.final for r in inits)
        conditions = [
            self.condition("PodReadyToStartContainers", self.volumes is not None and not done),
            self.condition(
                "Initialized",
                init_done,
                "" if init_done else "ContainersNotInitialized",
                "" if init_done else f"containers with incomplete status: [{' '.join(r.name for r in inits)}]",
            ),
            self.condition("ContainersReady", not unready, "" if not unready else not_ready_reason, not_ready_message),
            self.condition("Ready", not unready, "" if not unready else not_ready_reason, not_ready_message),
        ]
        ours = {c["type"] for c in conditions}
        foreign = [c for c in (pod.get("status") or {}).get("conditions") or [] if c["type"] not in ours]
        status: Obj = {
            "phase": phase,
            "conditions": foreign + conditions,
            "hostIP": HOST_IP,
            "hostIPs": [{"ip": HOST_IP}],
            "podIP": HOST_IP,
            "podIPs": [{"ip": HOST_IP}],
            "containerStatuses": [self.container_status(r) for r in mains],
        }
        if inits:
            status["initContainerStatuses"] = [self.container_status(r) for r in inits]
        if self.start_time:
            status["startTime"] = self.start_time
        return status

    def container_status(self, run: Run) -> Obj:
        state = run.state
        if not state:
            state = {"waiting": {"reason": "ContainerCreating"}}
        if "waiting" in state and state["waiting"].get("reason") == "ContainerCreating" and self.volume_error:
            state = {"waiting": {"reason": "ContainerCreating", "message": self.volume_error}}
        out = {
            "name": run.name,
            "state": state,
            "lastState": run.last_state,
            "ready": run.running and not run.init,
            "started": run.running,
            "restartCount": run.restarts,
            "image": run.spec.get("image", ""),
            "imageID": "",
        }
        if run.running or "terminated" in state:
            out["containerID"] = self.container_id(run)
        return out

    def push_status(self, pod: Obj) -> None:
        if self.terminal and self.last_status is None and pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return  # adopted a finished pod: its recorded status stands
        status = self.status(pod)
        if status == self.last_status:
            return
        try:
            # A merge patch replaces the lists whole; a strategic one would merge old and new container states.
            self.api.merge_patch(f"/api/v1/namespaces/{self.ns}/pods/{self.name}/status", {"status": status})
        except ApiError as e:
            if e.status == 404:
                return
            raise
        self.last_status = status

    def event(self, pod: Obj, reason: str, message: str, *, warning: bool = False) -> None:
        key = f"{reason}:{message}"
        if key in self.events_sent:
            return
        self.events_sent.add(key)
        stamp = now()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{self.name}.{uuid.uuid4().hex[:16]}", "namespace": self.ns},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": self.name,
                "namespace": self.ns,
                "uid": self.uid,
            },
            "reason": reason,
            "message": message,
            "type": "Warning" if warning else "Normal",
            "source": {"component": "kubelet", "host": pod["spec"].get("nodeName", "")},
            "reportingComponent": "kubelet",
            "reportingInstance": pod["spec"].get("nodeName", ""),
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            self.api.request("POST", f"/api/v1/namespaces/{self.ns}/events", body=body)
        except (ApiError, OSError) as e:
            log.debug("event not recorded: %s", e)


def volume_mode(volume: Obj) -> int:
    source = volume.get("configMap") or volume.get("secret") or {}
    return int(source.get("defaultMode", DEFAULT_MODE))


def mount_script(mounts: list[tuple[pathlib.Path, str, bool]], *, workdir: str) -> str:
    """The /bin/sh script run inside the container's mount namespace before exec'ing its command."""
    lines = ["set -e"]
    for source, target, read_only in mounts:
        t = shlex.quote(target)
        if source.is_dir():
            lines.append(f"mkdir -p {t}")
        else:
            lines.append(f"[ -e {t} ] || {{ mkdir -p $(dirname {t}); : > {t}; }}")
        lines.append(f"mount --bind {shlex.quote(str(source))} {t}")
        if read_only:
            lines.append(f"mount -o remount,bind,ro {t}")
    lines.append(f"cd {shlex.quote(workdir)}")
    lines.append('exec "$@"')
    return "\n".join(lines) + "\n"


def tail_file(path: pathlib.Path, *, lines: int, limit: int) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ""
    return b"\n".join(data.splitlines()[-lines:])[-limit:].decode(errors="replace")


def process_start_time(pid: int) -> str:
    """Field 22 of /proc/PID/stat: tells a live process from a later one that reused its pid."""
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def kill_orphans(state_dir: pathlib.Path) -> None:
    """Kills the process groups a previous agent instance left behind (pidfiles under state_dir)."""
    for pidfile in state_dir.glob("*/*.pid"):
        try:
            pid_text, started = [*pidfile.read_text().split(), ""][:2]
            pid = int(pid_text)
        except (OSError, ValueError):
            continue
        if started and process_start_time(pid) == started:
            log.info("killing orphaned container process group %d (%s)", pid, pidfile)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        pidfile.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# PersistentVolumeClaims: a directory per claim
# ---------------------------------------------------------------------------------------------

STORAGE_CLASS = "kubeft-local"
PROVISIONER = "kubeft.io/local-path"


class Provisioner:
    """Dynamic provisioner of the default StorageClass: each claim gets a hostPath PV on a new directory.

    The real PV controller (in kube-controller-manager) binds the PV to its claim; when the claim is
    deleted the PV is Released, and this removes the directory and the PV.
    """

    def __init__(self, api: Api, root: pathlib.Path) -> None:
        self.api = api
        self.root = root

    def start(self, stop: threading.Event) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        storage_class = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": PROVISIONER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        }
        try:
            self.api.request("POST", "/apis/storage.k8s.io/v1/storageclasses", body=storage_class)
        except ApiError as e:
            if e.status != 409:
                raise
        for path, handler in (
            ("/api/v1/persistentvolumeclaims", self.on_claim),
            ("/api/v1/persistentvolumes", self.on_volume),
        ):
            threading.Thread(
                target=follow,
                args=(self.api, path),
                kwargs={
                    "stop": stop,
                    "on_list": lambda items, handler=handler: [handler("ADDED", i) for i in items],
                    "on_event": handler,
                },
                name=path.rsplit("/", 1)[1],
                daemon=True,
            ).start()

    def on_claim(self, kind: str, claim: Obj) -> None:
        spec, meta = claim["spec"], claim["metadata"]
        if kind == "DELETED" or spec.get("volumeName") or spec.get("storageClassName") != STORAGE_CLASS:
            return
        name = f"pvc-{meta['uid']}"
        path = self.root / name
        path.mkdir(exist_ok=True)
        volume = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
            "spec": {
                "capacity": {"storage": spec.get("resources", {}).get("requests", {}).get("storage", "1Gi")},
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": STORAGE_CLASS,
                "volumeMode": spec.get("volumeMode", "Filesystem"),
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": meta["namespace"],
                    "name": meta["name"],
                    "uid": meta["uid"],
                },
                "hostPath": {"path": str(path), "type": "Directory"},
            },
        }
        try:
            self.api.request("POST", "/api/v1/persistentvolumes", body=volume)
            log.info("provisioned %s for claim %s/%s", name, meta["namespace"], meta["name"])
        except ApiError as e:
            if e.status != 409:
                raise

    def on_volume(self, kind: str, volume: Obj) -> None:
        annotations = volume["metadata"].get("annotations") or {}
        if kind == "DELETED" or annotations.get("pv.kubernetes.io/provisioned-by") != PROVISIONER:
            return
        if volume.get("status", {}).get("phase") != "Released":
            return
        if volume["spec"].get("persistentVolumeReclaimPolicy") != "Delete":
            return
        name = volume["metadata"]["name"]
        shutil.rmtree(self.root / name, ignore_errors=True)
        try:
            self.api.request("DELETE", f"/api/v1/persistentvolumes/{name}")
            log.info("deleted %s: its claim is gone", name)
        except ApiError as e:
            if e.status != 404:
                raise


# ---------------------------------------------------------------------------------------------
# Logs endpoint for the API server (kubectl logs)
# ---------------------------------------------------------------------------------------------


class LogHandler(http.server.BaseHTTPRequestHandler):
    """Serves GET /containerLogs/NS/POD/CONTAINER with follow, tailLines, limitBytes and previous."""

    agent: Agent

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        if len(parts) != 4 or parts[0] != "containerLogs":
            self.send_error(404, "only /containerLogs/NS/POD/CONTAINER is served")
            return
        _, ns, pod, container = parts
        query = dict(urllib.parse.parse_qsl(url.query))
        worker = self.agent.find(ns, pod)
        if worker is None:
            self.send_error(404, f"pod {ns}/{pod} is not on this node agent")
            return
        suffix = ".previous.log" if query.get("previous") == "true" else ".log"
        path = worker.dir / f"{container}{suffix}"
        if not path.exists():
            self.send_error(404, f'container "{container}" in pod "{pod}" has no logs')
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        data = path.read_bytes()
        if "tailLines" in query:
            data = b"".join(data.splitlines(keepends=True)[-int(query["tailLines"]) :])
        if "limitBytes" in query:
            data = data[: int(query["limitBytes"])]
        self.wfile.write(data)
        if query.get("follow") != "true":
            return
        offset = path.stat().st_size
        while True:
            run = next((r for r in worker.runs if r.name == container), None)
            alive = run is not None and run.running
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            if chunk:
                offset += len(chunk)
                self.wfile.write(chunk)
                self.wfile.flush()
            elif not alive:
                return
            time.sleep(0.5)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("logs: " + format, *args)


def serve_logs(agent: Agent, *, port: int, cert: str, key: str, client_ca: str) -> int:
    """Starts the logs endpoint on 127.0.0.1:port (0: any free port); returns the port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.load_verify_locations(client_ca)
    context.verify_mode = ssl.CERT_REQUIRED  # only the API server (and other CA-signed clients) may read logs
    handler = type("BoundLogHandler", (LogHandler,), {"agent": agent})
    server = http.server.ThreadingHTTPServer((HOST_IP, port), handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name="logs", daemon=True).start()
    return int(server.server_address[1])


# ---------------------------------------------------------------------------------------------
# The agent
# ---------------------------------------------------------------------------------------------


class Agent:
    """Watches pods bound to our nodes and keeps one PodWorker per pod."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.state_dir = pathlib.Path(args.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.api = Api(pathlib.Path(args.kubeconfig), scratch=self.state_dir / ".agent")
        self.nodes = Nodes(self.api, [parse_node_spec(n) for n in args.node], port=args.port)
        self.backoff = args.restart_backoff
        venv_bin = os.path.dirname(os.path.abspath(sys.executable))
        self.pod_path = ":".join([venv_bin, *args.pod_path, BASE_PATH])
        self.pod_env = dict(kv.split("=", 1) for kv in args.pod_env)
        self.workers: dict[str, PodWorker] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.provisioner = Provisioner(self.api, pathlib.Path(args.provision_dir)) if args.provision_dir else None

    def run(self, args: argparse.Namespace) -> None:
        kill_orphans(self.state_dir)
        if args.tls_cert:
            self.nodes.port = serve_logs(
                self, port=args.port, cert=args.tls_cert, key=args.tls_key, client_ca=args.client_ca
            )
        self.nodes.register()
        threading.Thread(target=self.nodes.heartbeat_forever, args=(self.stop,), name="heartbeat", daemon=True).start()
        if self.provisioner:
            self.provisioner.start(self.stop)
        threading.Thread(
            target=follow,
            args=(self.api, "/api/v1/pods"),
            kwargs={
                "stop": self.stop,
                "on_list": self.sync,
                "on_event": self.on_pod_event,
                "fieldSelector": "spec.nodeName!=",
            },
            name="pods",
            daemon=True,
        ).start()
        self.stop.wait()
        self.shutdown()

    def shutdown(self) -> None:
        """Stops every pod's processes: SIGTERM, then SIGKILL after a few seconds."""
        with self.lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.kill_all(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(r.signal_group(0) for w in workers for r in w.runs):
            time.sleep(0.1)
        for worker in workers:
            worker.kill_all(signal.SIGKILL)

    def sync(self, pods: list[Obj]) -> None:
        """After a (re-)list: every listed pod is dispatched, workers of pods no longer there stop."""
        seen = set()
        for pod in pods:
            seen.add(pod["metadata"]["uid"])
            self.dispatch(pod)
        with self.lock:
            gone = [w for uid, w in self.workers.items() if uid not in seen]
        for worker in gone:
            worker.update(None)

    def on_pod_event(self, kind: str, pod: Obj) -> None:
        if kind != "DELETED":
            self.dispatch(pod)
            return
        with self.lock:
            worker = self.workers.get(pod["metadata"]["uid"])
        if worker:
            worker.update(None)

    def dispatch(self, pod: Obj) -> None:
        if pod["spec"].get("nodeName") not in self.nodes.specs:
            return
        uid = pod["metadata"]["uid"]
        try:
            with self.lock:
                worker = self.workers.get(uid)
                if worker is None:
                    worker = self.workers[uid] = PodWorker(self, pod)
                    worker.thread.start()
        except Exception:  # one malformed pod must not stop the watch (and so every other pod)
            log.exception("pod %s/%s cannot be handled", pod["metadata"].get("namespace"), pod["metadata"].get("name"))
            return
        worker.update(pod)

    def forget(self, uid: str) -> None:
        with self.lock:
            self.workers.pop(uid, None)

    def find(self, ns: str, name: str) -> PodWorker | None:
        with self.lock:
            return next((w for w in self.workers.values() if w.ns == ns and w.name == name), None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="kubeft node agent: registers Nodes and runs their pods as local processes.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="--node syntax:\n" + NODE_SYNTAX,
    )
    parser.add_argument("--kubeconfig", required=True, help="credentials with rights over nodes, leases and pods")
    parser.add_argument("--state-dir", required=True, help="per-pod volumes, scripts and logs: DIR/<ns>_<pod>_<uid>/")
    parser.add_argument("--node", action="append", default=[], help="a node to register (repeatable); syntax below")
    parser.add_argument("--port", type=int, default=10250, help="port of the logs endpoint (0: any free port)")
    parser.add_argument("--tls-cert", help="serving certificate of the logs endpoint (omit: no endpoint)")
    parser.add_argument("--tls-key", help="its key")
    parser.add_argument("--client-ca", help="CA that signs the API server's client certificate")
    parser.add_argument(
        "--pod-env", action="append", default=[], metavar="K=V", help="extra env for every container (repeatable)"
    )
    parser.add_argument(
        "--pod-path", action="append", default=[], metavar="DIR", help="PATH entry after the venv bin (repeatable)"
    )
    parser.add_argument("--restart-backoff", type=float, default=2.0, help="first restart back-off (s), doubling to 60")
    parser.add_argument(
        "--provision-dir",
        help=f"provision PersistentVolumeClaims of StorageClass {STORAGE_CLASS} (made the default) as directories here",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if not args.node:
        args.node = [n for n in os.environ.get("KUBEFT_NODES", "").split(";") if n] or ["kubeft-node-0"]
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    agent = Agent(args)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: agent.stop.set())
    agent.run(args)


if __name__ == "__main__":
    main()
