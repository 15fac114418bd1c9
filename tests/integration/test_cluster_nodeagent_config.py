"""The node agent's pure parts: the --node syntax, $(VAR) expansion and kubelet's env resolution.

No cluster needed; hack/nodeagent.py is imported directly. Its pod lifecycle is covered against the
real control plane in test_local_cluster.py.
"""

from __future__ import annotations

import decimal

import pytest

from hack import nodeagent

POD = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "a"}},
    "spec": {"nodeName": "n0", "serviceAccountName": "sa", "containers": [{"name": "main"}]},
}


class FakeSources(nodeagent.Sources):
    """Secrets and ConfigMaps from a dict instead of the API server."""

    def __init__(self, objects: dict[tuple[str, str], dict[str, bytes]]) -> None:
        self.namespace = "ns"
        self.objects = objects

    def fetch(self, kind: str, name: str) -> dict[str, bytes] | None:
        return self.objects.get((kind, name))


def test_node_spec_parses_resources_labels_and_taints() -> None:
    spec = nodeagent.parse_node_spec(
        "gpu-0:cpu=4,nvidia.com/gpu=2:label.nvidia.com/gpu.product=NVIDIA-H100,taint.nvidia.com/gpu=present/NoSchedule"
    )
    assert spec.name == "gpu-0"
    assert spec.resources == {"cpu": "4", "memory": "32Gi", "pods": "110", "nvidia.com/gpu": "2"}
    assert spec.labels == {"nvidia.com/gpu.product": "NVIDIA-H100"}
    assert spec.taints == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]


def test_node_spec_without_items_gets_default_capacity() -> None:
    assert nodeagent.parse_node_spec("plain").resources == {"cpu": "8", "memory": "32Gi", "pods": "110"}


@pytest.mark.parametrize(
    ("text", "want_error"),
    [
        ("Bad_Name", "not a valid DNS subdomain"),
        ("n:taint.k=v/Sometimes", "needs /NoSchedule"),
        ("n:cpu", "is not KEY=VALUE"),
        ("n:memory=lots", "invalid quantity"),
    ],
)
def test_node_spec_errors_name_the_problem(text: str, want_error: str) -> None:
    with pytest.raises(ValueError, match=want_error):
        nodeagent.parse_node_spec(text)


@pytest.mark.parametrize(
    ("text", "want"),
    [("500m", "0.5"), ("2Gi", "2147483648"), ("1e3", "1000"), ("1.5k", "1500")],
)
def test_quantities_parse_like_kubernetes(text: str, want: str) -> None:
    assert nodeagent.parse_quantity(text) == decimal.Decimal(want)


@pytest.mark.parametrize(
    ("text", "want"),
    [("$(A)-x", "1-x"), ("$$(A)", "$(A)"), ("$(MISSING)", "$(MISSING)"), ("a$b", "a$b")],
)
def test_var_references_expand_like_kubelet(text: str, want: str) -> None:
    assert nodeagent.expand(text, {"A": "1"}) == want


def test_env_applies_env_from_then_env_with_prefix() -> None:
    container = {
        "name": "main",
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}, {"secretRef": {"name": "s"}}],
        "env": [
            {"name": "TOKEN", "value": "explicit"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "BOTH", "value": "$(CM_MODE)/$(POD)"},
        ],
    }
    sources = FakeSources({("ConfigMap", "cm"): {"MODE": b"fast"}, ("Secret", "s"): {"TOKEN": b"from-secret"}})
    env = nodeagent.container_env(POD, container, sources, {"PATH": "/bin"})
    assert env == {
        "PATH": "/bin",
        "CM_MODE": "fast",
        "TOKEN": "explicit",
        "POD": "p",
        "APP": "a",
        "BOTH": "fast/p",
    }


@pytest.mark.parametrize(
    ("ref", "objects", "want_message"),
    [
        ({"secretKeyRef": {"name": "x", "key": "k"}}, {}, 'secret "x" not found'),
        ({"configMapKeyRef": {"name": "x", "key": "k"}}, {}, 'configmap "x" not found'),
        ({"secretKeyRef": {"name": "x", "key": "k"}}, {("Secret", "x"): {}}, "couldn't find key k in Secret ns/x"),
        (
            {"configMapKeyRef": {"name": "x", "key": "k"}},
            {("ConfigMap", "x"): {}},
            "couldn't find key k in ConfigMap ns/x",
        ),
    ],
)
def test_missing_reference_is_a_config_error_with_kubelets_message(
    ref: dict[str, object], objects: dict[tuple[str, str], dict[str, bytes]], want_message: str
) -> None:
    container = {"name": "main", "env": [{"name": "V", "valueFrom": ref}]}
    with pytest.raises(nodeagent.ConfigError) as error:
        nodeagent.container_env(POD, container, FakeSources(objects), {})
    assert str(error.value) == want_message


def test_optional_missing_reference_leaves_the_variable_unset() -> None:
    container = {
        "name": "main",
        "env": [{"name": "V", "valueFrom": {"secretKeyRef": {"name": "x", "key": "k", "optional": True}}}],
        "envFrom": [{"configMapRef": {"name": "absent", "optional": True}}],
    }
    assert nodeagent.container_env(POD, container, FakeSources({}), {}) == {}
