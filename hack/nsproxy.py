"""A TCP forwarder from this machine's loopback into the local cluster's network namespace.

    python hack/nsproxy.py --listen 127.0.0.1:16443 --netns /run/netns/kubeft --connect 127.0.0.1:16443

The local cluster lives in a network namespace that hack/cluster.sh creates (docs/local-cluster.md
says why). This lets `kubectl` on the host reach its API server: the listening socket is opened
in the namespace this process starts in, then the process joins the cluster's namespace, so every
connection it makes from then on starts there. Sockets keep the namespace they were made in, which
is what makes one process enough. Needs CAP_SYS_ADMIN (root), as the rest of the node does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import socket
import sys

CLONE_NEWNET = 0x40000000


def setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host, int(port)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()


async def serve(listener: socket.socket, target: tuple[str, int]) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*target)
        except OSError as err:
            print(f"nsproxy: cannot reach {target[0]}:{target[1]} in the namespace: {err}", file=sys.stderr)
            client_w.close()
            return
        await asyncio.gather(pipe(client_r, upstream_w), pipe(upstream_r, client_w))

    server = await asyncio.start_server(handle, sock=listener)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, type=hostport, help="HOST:PORT, in this process's namespace")
    parser.add_argument("--netns", required=True, help="the namespace to connect in, e.g. /run/netns/kubeft")
    parser.add_argument("--connect", required=True, type=hostport, help="HOST:PORT, inside --netns")
    args = parser.parse_args(argv)
    listener = socket.create_server(args.listen, reuse_port=False)
    setns(args.netns)
    asyncio.run(serve(listener, args.connect))
    return 0


if __name__ == "__main__":
    sys.exit(main())
