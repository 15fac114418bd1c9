"""A throwaway S3 server on loopback (moto's), for the benchmarks that upload adapters.

Used by :mod:`benchmarks.trainer_throughput` (kubeft's trainer must write its adapter somewhere)
and :mod:`benchmarks.artifact_size` (upload time). Nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
from collections.abc import Iterator
from typing import Any

ACCESS_KEY = "benchmark"
SECRET_KEY = "benchmark-secret"  # a moto server accepts any credentials; these only need to be set


@dataclasses.dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to reach this server through boto3's default credential chain."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            # the server is on loopback, which the trainer's egress guard allows only so
            "KUBEFT_ALLOW_PRIVATE_ENDPOINTS": "true",
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def prefix_bytes(self, prefix: str) -> int:
        """Total size of the objects under `prefix` in the bucket."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sum(obj["Size"] for page in pages for obj in page.get("Contents", ()))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running(bucket: str = "kubeft-bench") -> Iterator[S3Server]:
    """Start moto's S3 server on 127.0.0.1 in this process, create `bucket`, stop it on exit."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        s3 = S3Server(endpoint=f"http://127.0.0.1:{port}", bucket=bucket)
        s3.client().create_bucket(Bucket=bucket)
        yield s3
    finally:
        server.stop()
