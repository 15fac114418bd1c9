"""Asks a DNS server one question over UDP and prints its answer: `hack/dns.sh` checks the local
cluster's DNS with it (`up` waits for a real answer, `status` shows one), and it is the tool to debug
that DNS by hand, as the machine may have no `dig`:

    hack/cluster.sh exec python hack/dns/query.py [--server IP] [--type A|AAAA|PTR|SRV|TXT] NAME

It prints the response code, then one line per answer record (`NAME TTL TYPE DATA`), and exits 0 on
NOERROR with at least one answer, 1 on any other answer, 2 when none came within `--timeout`.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import struct
import sys
from dataclasses import dataclass

TYPES = {"A": 1, "PTR": 12, "TXT": 16, "AAAA": 28, "SRV": 33}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


@dataclass(frozen=True)
class Record:
    name: str
    ttl: int
    type: str
    data: str


@dataclass(frozen=True)
class Answer:
    rcode: str
    records: list[Record]


def encode_name(name: str) -> bytes:
    labels = [label.encode("idna") for label in name.rstrip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\0"


def decode_name(msg: bytes, offset: int) -> tuple[str, int]:
    """The name at `offset` (following compression pointers) and the offset just past it."""
    labels: list[str] = []
    end = -1
    for _ in range(128):  # a bound against pointer loops in a malformed answer
        length = msg[offset]
        if length >= 0xC0:
            if end < 0:
                end = offset + 2
            offset = struct.unpack_from("!H", msg, offset)[0] & 0x3FFF
            continue
        if length == 0:
            return ".".join(labels) + ".", end if end >= 0 else offset + 1
        labels.append(msg[offset + 1 : offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    raise ValueError("malformed name in the answer")


def rdata_text(msg: bytes, rtype: int, offset: int, length: int) -> str:
    raw = msg[offset : offset + length]
    if rtype in (1, 28):
        return str(ipaddress.ip_address(raw))
    if rtype == 12:
        return decode_name(msg, offset)[0]
    if rtype == 33:
        priority, weight, port = struct.unpack_from("!HHH", msg, offset)
        return f"{priority} {weight} {port} {decode_name(msg, offset + 6)[0]}"
    if rtype == 16:
        return " ".join(repr(raw[i + 1 : i + 1 + raw[i]].decode("utf-8", "replace")) for i in _txt_starts(raw))
    return raw.hex()


def _txt_starts(raw: bytes) -> list[int]:
    starts, i = [], 0
    while i < len(raw):
        starts.append(i)
        i += 1 + raw[i]
    return starts


def parse(msg: bytes, query_id: int) -> Answer:
    ident, flags, qdcount, ancount = struct.unpack_from("!HHHH", msg, 0)
    if ident != query_id:
        raise ValueError("the answer is for another query")
    offset = 12
    for _ in range(qdcount):
        offset = decode_name(msg, offset)[1] + 4
    names = {code: name for name, code in TYPES.items()}
    records = []
    for _ in range(ancount):
        name, offset = decode_name(msg, offset)
        rtype, _class, ttl, length = struct.unpack_from("!HHIH", msg, offset)
        offset += 10
        records.append(Record(name, ttl, names.get(rtype, str(rtype)), rdata_text(msg, rtype, offset, length)))
        offset += length
    return Answer(RCODES.get(flags & 0xF, str(flags & 0xF)), records)


def query(name: str, *, server: str, rtype: str = "A", port: int = 53, timeout: float = 2.0) -> Answer:
    """One question, recursion desired, over UDP; raises TimeoutError when no answer comes."""
    query_id = int.from_bytes(os.urandom(2), "big")
    header = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0)  # flags: recursion desired; one question
    packet = header + encode_name(name) + struct.pack("!HH", TYPES[rtype], 1)
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((server, port))
        sock.send(packet)
        while True:
            try:
                return parse(sock.recv(65535), query_id)
            except ValueError:
                continue  # a stray or malformed datagram: keep waiting for ours until the timeout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name")
    parser.add_argument("--server", default=os.environ.get("KUBEFT_NODE_IP", "10.250.0.1"))
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--type", default="A", choices=sorted(TYPES))
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the answer")
    args = parser.parse_args(argv)
    try:
        answer = query(args.name, server=args.server, rtype=args.type, port=args.port, timeout=args.timeout)
    except (TimeoutError, OSError) as exc:
        print(f"no answer from {args.server}:{args.port} within {args.timeout}s ({exc})", file=sys.stderr)
        return 2
    print(answer.rcode)
    for record in answer.records:
        print(f"{record.name} {record.ttl} {record.type} {record.data}")
    return 0 if answer.rcode == "NOERROR" and answer.records else 1


if __name__ == "__main__":
    sys.exit(main())
