#!/usr/bin/env bash
# Installs what the local cluster's real node needs, on top of hack/build-k8s.sh's kubelet:
#   - containerd, runc, the CNI plugins, iptables, mmdebstrap and buildah from Debian's packages
#     (their services are not started: hack/node.sh starts containerd itself);
#   - crictl built from source through the Go module proxy into $KUBEFT_CACHE/crictl-v$CRICTL_VERSION.
# Needs root (a real node does). Called by hack/install.sh; returns at once when all is in place.
set -euo pipefail
CACHE="${KUBEFT_CACHE:-$HOME/.cache/kubeft}"
CRICTL_VERSION="${CRICTL_VERSION:-1.34.0}"
PKGS=(containerd runc containernetworking-plugins iptables mmdebstrap buildah gcc libc6-dev util-linux iproute2)
CMDS=(containerd runc /usr/lib/cni/bridge iptables mmdebstrap buildah gcc nsenter ip)

missing=()
for c in "${CMDS[@]}"; do command -v "$c" >/dev/null 2>&1 || [ -x "$c" ] || missing+=("$c"); done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-node.sh: the local node needs root to install ${missing[*]} (Debian packages ${PKGS[*]})." >&2
    echo "  Without root, use an existing cluster instead: see docs/local-cluster.md, 'Without root'." >&2
    exit 1
  fi
  echo ">> installing the node's runtime from Debian packages: ${PKGS[*]}" >&2
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PKGS[@]}" >/dev/null
fi

out="$CACHE/crictl-v$CRICTL_VERSION/bin"
if [ ! -x "$out/crictl" ]; then
  echo ">> building crictl v$CRICTL_VERSION into $out" >&2
  mkdir -p "$out"
  GOBIN="$out" GOFLAGS=-buildvcs=false go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/cri-tools/cmd/crictl@v$CRICTL_VERSION"
fi
