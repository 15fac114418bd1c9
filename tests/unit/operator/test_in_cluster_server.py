"""The operator finds the API server in a pod the way client-go does: from the service env vars."""

from __future__ import annotations

import pytest

from kubeft_operator import config


@pytest.mark.parametrize(
    ("env", "want"),
    [
        ({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}, "https://10.96.0.1:443"),
        ({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}, "https://[fd00::1]:6443"),
        ({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, None),
        ({}, None),
    ],
    ids=["ipv4", "ipv6", "no-port", "outside-a-pod"],
)
def test_in_cluster_server(env: dict[str, str], want: str | None) -> None:
    assert config.in_cluster_server(env) == want
