"""Endpoint policy: what an S3 or Hub endpoint URL really points at, and whether it may.

Part of the contract package (``kubeft_operator.api``, which the trainer image also installs), so
the operator's admission-time check (builders/endpoints.py) and any connect-time check apply one
policy. Standard library only.

A user controls the endpoint URL, so its host is read the way the client libraries and the
system resolver read it, not the way it looks:

- every numeric IPv4 spelling that ``inet_aton`` accepts: one to four parts, each decimal, octal
  (leading ``0``) or hex (``0x``), the last part filling the remaining bytes (``2852039166``,
  ``0xa9fea9fe``, ``0251.0376.0251.0376``, ``169.254.43518``);
- IPv6 literals carrying an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible
  ``::a.b.c.d``, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``) are judged by that address;
- trailing dots, percent-encoding and an IPv6 zone are removed first; a URL with userinfo
  (``user@host``) or characters no host name has is refused outright, since clients disagree on
  where such a URL goes.

Then: link-local addresses and the cloud metadata endpoints (by address or well-known name) are
always refused; loopback, private and other non-global addresses, and ``localhost``, only when the
platform allows private endpoints. Other host names are not resolved here (a name can resolve
differently when the trainer connects); that is a connect-time check's job.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse

# Always refused, whatever the platform allows: where clouds serve instance credentials.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2")
)
METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data"})
_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class Refused(ValueError):
    """The endpoint is refused; ``kind`` says why (``link-local``, ``metadata``, ``loopback``,
    ``private``, ``malformed``, ...), ``always`` whether allowing private endpoints would help."""

    def __init__(self, kind: str, detail: str, *, always: bool) -> None:
        super().__init__(detail)
        self.kind = kind
        self.always = always


def parse_inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address ``inet_aton`` makes of ``text``, or None when it is no number at all."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        try:
            if part.lower().startswith("0x"):
                values.append(int(part[2:], 16) if part[2:] else 0)
            elif len(part) > 1 and part.startswith("0"):
                values.append(int(part, 8))
            else:
                if not part.isdigit():
                    return None
                values.append(int(part, 10))
        except ValueError:
            return None
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = 0
    for v in head:
        number = number << 8 | v
    return ipaddress.IPv4Address(number << 8 * (4 - len(head)) | last)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if int(address) >> 32 == 0 and int(address) > 1:  # IPv4-compatible ::a.b.c.d (not :: or ::1)
        return ipaddress.IPv4Address(int(address))
    return None


def canonical_host(url: str) -> str | ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The host ``url`` connects to: an address when it is numeric in any spelling, else the
    lower-case name without trailing dots. Raises :class:`Refused` (``malformed``) when clients
    could disagree on the host."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        raw_host = parts.hostname
    except ValueError as err:
        raise Refused("malformed", f"is not a URL ({err})", always=True) from None
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise Refused("malformed", "carries user information (user@host); put credentials in the Secret", always=True)
    if not raw_host:
        raise Refused("malformed", "has no host", always=True)
    host = urllib.parse.unquote(raw_host).lower()
    if "%" in host:  # an IPv6 zone (fe80::1%eth0) or a second round of encoding
        host = host.split("%", 1)[0]
    host = host.rstrip(".")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        numeric = parse_inet_aton(host)
        if numeric is not None:
            return numeric
        if not _HOST_NAME.fullmatch(host):
            raise Refused(
                "malformed", f"has a host no resolver reads the same way ({raw_host!r})", always=True
            ) from None
        return host
    if isinstance(address, ipaddress.IPv6Address):
        return _embedded_ipv4(address) or address
    return address


def check(url: str, *, allow_private: bool) -> None:
    """Raises :class:`Refused` when the policy refuses ``url``; returns when it allows it."""
    host = canonical_host(url)
    if not isinstance(host, str):
        check_address(host, allow_private=allow_private)
        return
    if host in METADATA_NAMES:
        raise Refused("metadata", f"names a cloud metadata service ({host})", always=True)
    if (host == "localhost" or host.endswith(".localhost")) and not allow_private:
        raise Refused("loopback", f"is a loopback address ({host})", always=False)


def check_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address, *, allow_private: bool) -> None:
    """Raises :class:`Refused` when the policy refuses a connection to ``address`` (the trainer
    judges each address a name resolves to with this, right before it connects)."""
    if isinstance(address, ipaddress.IPv6Address):
        address = _embedded_ipv4(address) or address
    if address.is_link_local:
        raise Refused("link-local", f"is a link-local address ({address}, cloud metadata)", always=True)
    if address in METADATA_ADDRESSES:
        raise Refused("metadata", f"is a cloud metadata address ({address})", always=True)
    kind = next(
        (k for k in ("loopback", "unspecified", "multicast", "reserved", "private") if getattr(address, f"is_{k}")),
        None if address.is_global else "private",
    )
    if kind is not None and not allow_private:
        raise Refused(kind, f"is a {kind} address ({address})", always=False)
