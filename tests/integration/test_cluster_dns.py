"""The local cluster's DNS (CoreDNS, hack/dns.sh), as multi-node training pods use it.

Two pods with `hostname` and `subdomain` behind a headless Service, the shape of a multi-node
training job's workers: each finds the other by its stable name, through the name server and
search path the kubelet wrote into its resolv.conf, and reaches it over TCP. Names outside
cluster.local fail at once, as nothing outside the cluster's network namespace is reachable.
Everything is real: CoreDNS's kubernetes plugin answers from the EndpointSlices that the
controller manager writes for the Service.
"""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hack.dns import query
from tests.fixtures import cluster as cluster_fixture

pytestmark = pytest.mark.cluster

Cluster = cluster_fixture.Cluster
SERVICE = "workers"
PEERS = ("peer-0", "peer-1")
PORT = 29500
# Each peer answers every connection with its own host name, as a rendezvous server would greet.
LISTENER = f"""
import socket
name = socket.gethostname()
server = socket.create_server(("", {PORT}))
print("listening", flush=True)
while True:
    conn, _ = server.accept()
    with conn:
        conn.sendall(name.encode())
"""
# Run inside a pod with `kubectl exec`: for each name, its address (or the error) and, when asked,
# what a TCP connection to it reads, plus how long each took.
PROBE = f"""
import json, socket, sys, time
connect = sys.argv[1] == "connect"
out = {{}}
for name in sys.argv[2:]:
    t0 = time.monotonic()
    try:
        address = socket.gethostbyname(name)
        greeting = None
        if connect:
            with socket.create_connection((name, {PORT}), timeout=5) as conn:
                greeting = conn.recv(100).decode()
        out[name] = {{"address": address, "greeting": greeting}}
    except OSError as exc:
        out[name] = {{"error": type(exc).__name__ + ": " + str(exc)}}
    out[name]["seconds"] = time.monotonic() - t0
print(json.dumps(out))
"""


def peer(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "peer"}},
        "spec": {
            "hostname": name,
            "subdomain": SERVICE,
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": cluster_fixture.BASE_IMAGE,
                    "command": ["python3", "-u", "-c", textwrap.dedent(LISTENER)],
                    "ports": [{"containerPort": PORT}],
                }
            ],
        },
    }


def headless_service() -> dict[str, Any]:
    # publishNotReadyAddresses: workers look each other up while they start, before they are Ready.
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVICE},
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {"app": "peer"},
            "ports": [{"name": "rendezvous", "port": PORT}],
        },
    }


def published_hostnames(cluster: Cluster, namespace: str) -> set[str]:
    slices = cluster.get("endpointslices", "-n", namespace, "-l", f"kubernetes.io/service-name={SERVICE}")
    return {e.get("hostname") for s in slices["items"] for e in s.get("endpoints") or []}


@pytest.fixture(scope="module")
def peers(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[tuple[str, dict[str, str]]]:
    """A namespace with the headless Service and both peers listening: (namespace, {pod: its IP})."""
    namespaces = cluster_fixture.fresh_namespace(cluster, request, "t")
    namespace = next(namespaces)
    try:
        cluster.apply([headless_service(), *(peer(name) for name in PEERS)], namespace=namespace)
        for name in PEERS:
            cluster.wait_for(
                lambda name=name: "listening" in cluster.logs(namespace, name), timeout=90, what=f"{name} listening"
            )
        cluster.wait_for(
            lambda: published_hostnames(cluster, namespace) >= set(PEERS), what="both hostnames in the EndpointSlice"
        )
        yield namespace, {name: cluster.get("pod", name, "-n", namespace)["status"]["podIP"] for name in PEERS}
    finally:
        next(namespaces, None)  # deletes the namespace, and with it the Service and the pods


def probe(cluster: Cluster, namespace: str, pod: str, *names: str, connect: bool = False) -> dict[str, Any]:
    mode = "connect" if connect else "resolve"
    out = cluster.kubectl("exec", "-n", namespace, pod, "--", "python3", "-c", PROBE, mode, *names).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def other(name: str) -> str:
    return PEERS[1 - PEERS.index(name)]


@pytest.mark.parametrize("pod", PEERS)
def test_pod_resolves_its_peer_by_fully_qualified_name(
    cluster: Cluster, peers: tuple[str, dict[str, str]], pod: str
) -> None:
    namespace, ips = peers
    fqdn = f"{other(pod)}.{SERVICE}.{namespace}.svc.cluster.local"
    assert probe(cluster, namespace, pod, fqdn)[fqdn].get("address") == ips[other(pod)]


@pytest.mark.parametrize("pod", PEERS)
def test_pod_resolves_its_peer_by_short_name_through_its_search_path(
    cluster: Cluster, peers: tuple[str, dict[str, str]], pod: str
) -> None:
    namespace, ips = peers
    short = f"{other(pod)}.{SERVICE}"
    assert probe(cluster, namespace, pod, short)[short].get("address") == ips[other(pod)]


def test_pod_resolv_conf_names_the_cluster_dns_and_search_path(
    cluster: Cluster, peers: tuple[str, dict[str, str]]
) -> None:
    namespace, _ = peers
    resolv = cluster.kubectl("exec", "-n", namespace, PEERS[0], "--", "cat", "/etc/resolv.conf").stdout.split("\n")
    assert f"nameserver {cluster_fixture.NODE_IP}" in resolv
    assert f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local" in resolv


@pytest.mark.parametrize("pod", PEERS)
def test_pod_reaches_its_peer_over_tcp_by_name(cluster: Cluster, peers: tuple[str, dict[str, str]], pod: str) -> None:
    namespace, _ = peers
    short = f"{other(pod)}.{SERVICE}"
    assert probe(cluster, namespace, pod, short, connect=True)[short].get("greeting") == other(pod)


def test_peer_address_maps_back_to_its_name(cluster: Cluster, peers: tuple[str, dict[str, str]]) -> None:
    namespace, ips = peers
    if not cluster_fixture.in_cluster_netns():
        pytest.skip("asks the cluster DNS directly: run pytest through `hack/cluster.sh exec`")
    reverse = ".".join(reversed(ips[PEERS[1]].split("."))) + ".in-addr.arpa"
    answer = query.query(reverse, server=cluster_fixture.NODE_IP, rtype="PTR")
    assert [r.data for r in answer.records] == [f"{PEERS[1]}.{SERVICE}.{namespace}.svc.cluster.local."]


def test_name_outside_the_cluster_fails_fast_in_a_pod(cluster: Cluster, peers: tuple[str, dict[str, str]]) -> None:
    namespace, _ = peers
    # ndots:5 sends it through the whole search path first: four questions, each answered at once.
    outcome = probe(cluster, namespace, PEERS[0], "example.com", "pypi.org.")
    for name, result in outcome.items():
        assert "address" not in result, f"{name} resolved to {result.get('address')}"
        assert result["seconds"] < 2, f"{name} took {result['seconds']:.1f}s to fail"


def test_cluster_dns_refuses_names_outside_its_zones_at_once(cluster: Cluster) -> None:
    if not cluster_fixture.in_cluster_netns():
        pytest.skip("asks the cluster DNS directly: run pytest through `hack/cluster.sh exec`")
    t0 = time.monotonic()
    answer = query.query("example.com", server=cluster_fixture.NODE_IP, timeout=2)
    assert (answer.rcode, answer.records) == ("REFUSED", [])
    assert time.monotonic() - t0 < 1
