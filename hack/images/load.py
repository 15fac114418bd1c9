"""Loads one image from an OCI layout into the local node's containerd, sending only what it lacks.

    python3 hack/images/load.py --layout DIR --ref REF --image NAME --address SOCKET

hack/images.sh pushes each image it builds into one OCI layout under a short ref ("trainer"). This
picks that manifest, names it NAME (the full reference the kubelet asks for, e.g.
ghcr.io/kubeft/trainer:0.1.0) and streams an OCI archive of it into
`ctr -n k8s.io images import -`. Blobs that containerd's content store already holds are left
out of the stream: a code change to the trainer then sends a few kilobytes, not the gigabytes of
its torch layer. An image whose manifest containerd already has under NAME is not sent at all.
Standard library only, so it runs before the project's virtualenv exists.
"""

from __future__ import annotations

import argparse
import io
import json
import pathlib
import subprocess
import sys
import tarfile
import time

NAMESPACE = "k8s.io"  # the containerd namespace of the kubelet's CRI


def ctr(address: str, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ctr", "--address", address, "--namespace", NAMESPACE, *args], **kwargs)  # type: ignore[call-overload, no-any-return]


def blob(layout: pathlib.Path, digest: str) -> pathlib.Path:
    algorithm, hex_ = digest.split(":", 1)
    return layout / "blobs" / algorithm / hex_


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layout", type=pathlib.Path, required=True)
    parser.add_argument("--ref", required=True, help="org.opencontainers.image.ref.name in the layout")
    parser.add_argument("--image", required=True, help="the name containerd gives it")
    parser.add_argument("--address", required=True, help="containerd's socket")
    args = parser.parse_args(argv)

    index = json.loads((args.layout / "index.json").read_text())
    found = [
        m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == args.ref
    ]
    if not found:
        print(f"load.py: {args.ref} is not in {args.layout}: run hack/images.sh build", file=sys.stderr)
        return 1
    desc = found[-1]
    listing = ctr(args.address, "images", "ls", f"name=={args.image}", capture_output=True, text=True, check=True)
    if desc["digest"] in listing.stdout:
        print(f">> {args.image}: already loaded ({desc['digest'][:19]})", file=sys.stderr)
        return 0

    have = set(ctr(args.address, "content", "ls", "-q", capture_output=True, text=True, check=True).stdout.split())
    manifest = json.loads(blob(args.layout, desc["digest"]).read_text())
    wanted = [desc["digest"], manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]
    # The manifest and config are tiny and always sent, so the import can name the image.
    send = [d for i, d in enumerate(wanted) if i < 2 or d not in have]
    entry = dict(desc, annotations={**desc.get("annotations", {}), "io.containerd.image.name": args.image})

    started = time.monotonic()
    proc = subprocess.Popen(
        ["ctr", "--address", args.address, "--namespace", NAMESPACE, "images", "import", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    assert proc.stdin is not None
    sent = 0
    with tarfile.open(fileobj=proc.stdin, mode="w|") as tar:
        for name, data in (
            ("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode()),
            ("index.json", json.dumps({"schemaVersion": 2, "manifests": [entry]}).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for digest in send:
            path = blob(args.layout, digest)
            tar.add(path, arcname=str(path.relative_to(args.layout)))
            sent += path.stat().st_size
    proc.stdin.close()
    if proc.wait() != 0:
        print(f"load.py: ctr images import of {args.image} failed (exit {proc.returncode})", file=sys.stderr)
        return 1
    print(
        f">> {args.image}: loaded {len(send)} of {len(wanted)} blobs, {sent / 2**20:.1f} MiB "
        f"in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
