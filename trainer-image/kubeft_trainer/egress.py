"""Connect-time endpoint guard: the trainer's S3 and Hub connections go only where the policy allows.

The operator judges ``spec.storage.endpoint`` and ``spec.output.hub.endpoint`` when it admits a
run, but it does not resolve host names: a name can point anywhere by the time the trainer
connects (DNS rebinding). So the trainer, before its first download, judges each endpoint again
with the same policy (``kubeft_operator.api.endpoint_policy``) and wraps ``socket.getaddrinfo``:
every time boto3 or huggingface_hub resolves one of those host names, each address it resolves to
is judged right before the connection uses it, and a refused one raises :class:`EndpointRefused`
instead of connecting. Other connections (the API server, for progress) are not touched.

Private and loopback addresses are allowed when the operator allows them
(``KUBEFT_ALLOW_PRIVATE_ENDPOINTS=true``, which it passes to the pod); link-local and metadata
addresses never are.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from collections.abc import Iterable
from typing import Any

from kubeft_operator.api import endpoint_policy

ENV_ALLOW_PRIVATE = "KUBEFT_ALLOW_PRIVATE_ENDPOINTS"
# The resolver before any guard: each install() replaces the previous guard instead of stacking.
_RESOLVE = socket.getaddrinfo


class EndpointRefused(OSError):
    """A connection to an endpoint the policy refuses; the trainer exits 64 (EndpointRefused)."""


def allow_private(environ: os._Environ[str] | dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get(ENV_ALLOW_PRIVATE, "").strip().lower() in ("1", "true", "yes")


def install(urls: Iterable[str], *, private_allowed: bool) -> None:
    """Judge each endpoint URL now, then guard every later resolution of its host name."""
    names: set[str] = set()
    for url in urls:
        try:
            endpoint_policy.check(url, allow_private=private_allowed)
        except endpoint_policy.Refused as refused:
            raise EndpointRefused(f"endpoint {url} {refused}") from None
        host = endpoint_policy.canonical_host(url)
        if isinstance(host, str):
            names.add(host)
    if not names:
        socket.getaddrinfo = _RESOLVE
        return

    def judge(name: str, results: Any) -> None:
        for *_, sockaddr in results:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            try:
                endpoint_policy.check_address(address, allow_private=private_allowed)
            except endpoint_policy.Refused as refused:
                raise EndpointRefused(f"{name} resolves to {address}, which {refused}") from None

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        results = _RESOLVE(host, *args, **kwargs)
        name = (host.decode() if isinstance(host, bytes) else str(host or "")).lower().rstrip(".")
        if name in names:
            judge(name, results)
        return results

    # Once now, so a refused endpoint fails the run in seconds, before any download or retry loop;
    # then at every connection. A name that does not resolve yet is left to the client to report.
    for name in sorted(names):
        with contextlib.suppress(socket.gaierror):
            judge(name, _RESOLVE(name, None))
    socket.getaddrinfo = guarded


def refused_in(exc: BaseException) -> EndpointRefused | None:
    """The :class:`EndpointRefused` behind ``exc`` (clients wrap it in their own errors), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, EndpointRefused):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
