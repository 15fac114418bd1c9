"""A throwaway object store on loopback, for the benchmarks that upload adapters.

The same SeaweedFS the local cluster runs (hack/s3.sh), started for the benchmark alone on
127.0.0.1, a free port and a temporary data directory, and stopped (data deleted) at the end, so
upload times are a real server's, with data on disk. Used by :mod:`benchmarks.trainer_throughput`
(kubeft's trainer must write its adapter somewhere) and :mod:`benchmarks.artifact_size` (upload
time). Nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import random
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
_KEYS = json.loads((ROOT / "hack" / "s3" / "identities.json").read_text())["identities"][0]["credentials"][0]
ACCESS_KEY, SECRET_KEY = _KEYS["accessKey"], _KEYS["secretKey"]


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


def secret_values(name: str) -> dict[tuple[str, str], str]:
    """The keys as a Secret `name` holds them for a FineTuneJob's ``spec.storage.credentialsSecretRef``:
    (Secret name, key) -> value, what :func:`benchmarks.pod.render` resolves the pod's env from."""
    return {(name, "AWS_ACCESS_KEY_ID"): ACCESS_KEY, (name, "AWS_SECRET_ACCESS_KEY"): SECRET_KEY}


def free_port() -> int:
    """A port P with P..P+3 and their gRPC twins (+10000) free: SeaweedFS's S3, master, volume, filer."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 29990)
        try:
            with contextlib.ExitStack() as stack:
                for p in [port + i for i in range(4)] + [port + 10000 + i for i in range(4)]:
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free block of ports for the benchmark's S3 store")


@contextlib.contextmanager
def running(bucket: str = "kubeft-bench") -> Iterator[S3Server]:
    """Start a SeaweedFS of its own on 127.0.0.1 (`hack/s3.sh`), create `bucket`, remove it all on exit."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="kubeft-bench-s3-") as state:
        env = {**os.environ, "S3_NETNS": "", "S3_STATE_DIR": state, "S3_PORT": str(port)}

        def s3sh(command: str) -> None:
            subprocess.run(["bash", str(ROOT / "hack" / "s3.sh"), command], env=env, check=True, timeout=300)

        s3sh("up")
        try:
            s3 = S3Server(endpoint=f"http://127.0.0.1:{port}", bucket=bucket)
            s3.client().create_bucket(Bucket=bucket)
            yield s3
        finally:
            s3sh("down")
