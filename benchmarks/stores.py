"""Where a benchmark's kubeft runs export their adapter: a local S3 store, or the local Hub stand-in.

kubeft's trainer writes its adapter to S3 (``spec.output.s3``) or to a Hugging Face Hub repository
(``spec.output.hub``); it has no local-directory output, and it checks write access to the output
before it trains. So every metered run needs a store that answers on loopback:

- ``s3``: the SeaweedFS the project builds (:mod:`benchmarks.s3server`, ``hack/s3.sh``), when its
  ``weed`` binary is on this machine;
- ``hub``: the Hub stand-in of ``tests/fixtures/hub.py``, pure Python from this repository and the
  venv (``huggingface_hub``, ``pytest``). It is what a GPU machine without the ``weed`` binary and
  without network uses. That trainer process gets ``HF_HUB_OFFLINE=0`` (the Hub client refuses every
  request otherwise) and ``HF_ENDPOINT`` pointing at the stand-in; its model and data are local
  paths, and the trainer's egress guard admits only the spec's endpoints.

``auto`` picks ``s3`` when ``weed`` is there, else ``hub``. Used by
:mod:`benchmarks.trainer_throughput` and :mod:`benchmarks.gpu_check`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import re
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks import s3server

ROOT = pathlib.Path(__file__).resolve().parents[1]
KINDS = ("auto", "s3", "hub")
HUB_SECRET = "bench-hub"
S3_SECRET = "bench-s3"


@dataclasses.dataclass(frozen=True)
class Store:
    """A running store and how a FineTuneJob spec and its pod reach it."""

    kind: str
    description: str
    storage: dict[str, Any] | None  # spec.storage
    secrets: dict[tuple[str, str], str]  # what the pod's secretKeyRefs resolve to
    env: dict[str, str]  # laid over the pod's env
    output: Callable[[str], dict[str, Any]]  # spec.output for an adapter called `name`
    files: Callable[[str], dict[str, int]]  # what the store holds for `name`: path -> bytes


def weed_binary() -> pathlib.Path | None:
    """The `weed` that `hack/s3.sh install` builds, if it is on this machine (the version is read from s3.sh)."""
    script = (ROOT / "hack" / "s3.sh").read_text()
    match = re.search(r'SEAWEEDFS_VERSION="\$\{SEAWEEDFS_VERSION:-([^}]+)\}"', script)
    version = os.environ.get("SEAWEEDFS_VERSION") or (match.group(1) if match else "")
    cache = pathlib.Path(os.environ.get("KUBEFT_CACHE") or pathlib.Path.home() / ".cache" / "kubeft")
    weed = cache / f"seaweedfs-{version}" / "bin" / "weed"
    return weed if weed.is_file() and os.access(weed, os.X_OK) else None


def choose(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown store {kind!r}; choose from {', '.join(KINDS)}")
    if kind != "auto":
        return kind
    return "s3" if weed_binary() is not None else "hub"


@contextlib.contextmanager
def running(kind: str, *, workdir: pathlib.Path) -> Iterator[Store]:
    """Start the store `kind` (or the one `auto` picks) for the block; stop it and delete its data after."""
    kind = choose(kind)
    if kind == "s3":
        if weed_binary() is None:
            raise RuntimeError(
                "the S3 store needs the SeaweedFS `weed` binary, which is not on this machine: run `hack/s3.sh "
                "install` (it needs Go and the Go module proxy), or use the Hub stand-in (--store hub)"
            )
        with s3server.running() as s3:
            yield _s3_store(s3)
        return
    from tests.fixtures import hub as hub_standin

    with hub_standin.serve() as hub:
        store = workdir / "hub-store"
        store.mkdir(parents=True, exist_ok=True)
        hub.reset(store)
        yield _hub_store(hub)


def _s3_store(s3: s3server.S3Server) -> Store:
    def files(name: str) -> dict[str, int]:
        pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=f"{name}/")
        return {obj["Key"][len(name) + 1 :]: obj["Size"] for page in pages for obj in page.get("Contents", ())}

    return Store(
        kind="s3",
        description=f"SeaweedFS on {s3.endpoint} (benchmarks/s3server.py; the weed binary was found)",
        storage={"endpoint": s3.endpoint, "credentialsSecretRef": {"name": S3_SECRET}},
        secrets=s3server.secret_values(S3_SECRET),
        env={},
        output=lambda name: {"s3": {"uri": f"s3://{s3.bucket}/{name}"}},
        files=files,
    )


def _hub_store(hub: Any) -> Store:
    def files(name: str) -> dict[str, int]:
        root = hub.files(f"{hub.user}/{name}")
        if not root.is_dir():
            return {}
        return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}

    return Store(
        kind="hub",
        description=(
            f"the Hub stand-in of tests/fixtures/hub.py on {hub.url} (no weed binary for a local S3 store; "
            "the trainer has no local-directory output)"
        ),
        storage=None,
        secrets={(HUB_SECRET, "token"): hub.token},
        env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": hub.url},
        output=lambda name: {
            "hub": {
                "repo": f"{hub.user}/{name}",
                "private": True,
                "tokenSecretRef": {"name": HUB_SECRET, "key": "token"},
                "endpoint": hub.url,
            }
        },
        files=files,
    )
