"""Endpoint policy: which S3 and Hub endpoints a FineTuneJob may point the trainer at.

The CRD already restricts every model, dataset and output reference to a Hub id, ``s3://`` or a
path, so the only URLs a user controls are ``spec.storage.endpoint`` and
``spec.output.hub.endpoint``. Left unchecked they turn the trainer into a request forwarder into
the cluster network (SSRF). Called by the reconciler right after it parses the spec; a violation
fails the run with reason ``InvalidSpec`` and a message saying what to change.

- The host is read the way clients and the system resolver read it (every numeric IPv4
  spelling, IPv4 inside IPv6, trailing dots, percent-encoding; userinfo is refused), and judged by
  one policy, ``kubeft_operator.api.endpoint_policy``, which the trainer image carries too.
- Link-local addresses and cloud metadata endpoints are always refused.
- Loopback, private, and other non-global addresses, and ``localhost``, are refused unless the
  operator runs with ``KUBEFT_ALLOW_PRIVATE_ENDPOINTS=true`` (chart value
  ``operator.allowPrivateEndpoints``), for platforms with an in-cluster object store.
- Host names are not resolved here: a name could resolve differently when the trainer connects.
  Platforms that need more restrict the trainer pods' egress with a NetworkPolicy.
"""

from __future__ import annotations

from kubeft_operator import config
from kubeft_operator.api import endpoint_policy
from kubeft_operator.api import spec as spec_models


def problem(spec: spec_models.FineTuneJobSpec, settings: config.Settings) -> str | None:
    """The first endpoint the policy refuses, as a message naming the field; None when all are allowed."""
    endpoints = []
    if spec.storage is not None and spec.storage.endpoint:
        endpoints.append(("spec.storage.endpoint", spec.storage.endpoint))
    if spec.output.hub is not None and spec.output.hub.endpoint:
        endpoints.append(("spec.output.hub.endpoint", spec.output.hub.endpoint))
    for field, url in endpoints:
        try:
            endpoint_policy.check(url, allow_private=settings.allow_private_endpoints)
        except endpoint_policy.Refused as refused:
            if refused.kind == "malformed":
                return f"{field} {url} {refused}"
            if refused.always:
                return f"{field} {url} {refused}; object stores and the Hub are never there"
            return (
                f"{field} {url} {refused}, which this operator does not allow; use the store's public "
                "name, or ask the platform team to set operator.allowPrivateEndpoints=true"
            )
    return None
