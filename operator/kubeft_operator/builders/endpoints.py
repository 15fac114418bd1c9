"""Endpoint policy: which S3 and Hub endpoints a FineTuneJob may point the trainer at.

The CRD already restricts every model, dataset and output reference to a Hub id, ``s3://`` or a
path, so the only URLs a user controls are ``spec.storage.endpoint`` and
``spec.output.hub.endpoint``. Left unchecked they turn the trainer into a request forwarder into
the cluster network (SSRF). Called by the reconciler right after it parses the spec; a violation
fails the run with reason ``InvalidSpec`` and a message saying what to change.

- Link-local addresses (169.254.0.0/16, fe80::/10: cloud metadata services) are always refused.
- Loopback, private, and other non-global addresses, and ``localhost``, are refused unless the
  operator runs with ``KUBEFT_ALLOW_PRIVATE_ENDPOINTS=true`` (chart value
  ``operator.allowPrivateEndpoints``), for platforms with an in-cluster object store.
- Host names are not resolved here: a name could resolve differently when the trainer connects.
  Platforms that need more restrict the trainer pods' egress with a NetworkPolicy.
"""

from __future__ import annotations

import ipaddress
import urllib.parse

from kubeft_operator import config
from kubeft_operator.api import spec as spec_models


def _classify(host: str) -> str | None:
    """Why ``host`` is not a public address, or None when it is one (or a name)."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return "loopback"
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return None
    if address.is_link_local:
        return "link-local"
    for kind in ("loopback", "private", "unspecified", "multicast", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind
    return None if address.is_global else "private"


def problem(spec: spec_models.FineTuneJobSpec, settings: config.Settings) -> str | None:
    """The first endpoint the policy refuses, as a message naming the field; None when all are allowed."""
    endpoints = []
    if spec.storage is not None and spec.storage.endpoint:
        endpoints.append(("spec.storage.endpoint", spec.storage.endpoint))
    if spec.output.hub is not None and spec.output.hub.endpoint:
        endpoints.append(("spec.output.hub.endpoint", spec.output.hub.endpoint))
    for field, url in endpoints:
        kind = _classify(urllib.parse.urlsplit(url).hostname or "")
        if kind == "link-local":
            return f"{field} {url} is a link-local address (cloud metadata); object stores are never there"
        if kind is not None and not settings.allow_private_endpoints:
            return (
                f"{field} {url} is a {kind} address, which this operator does not allow; use the store's "
                "public name, or ask the platform team to set operator.allowPrivateEndpoints=true"
            )
    return None
