#!/usr/bin/env bash
# `make images`: builds kubeft's images with buildah from the repository's Dockerfiles, without a
# registry and without network inside the builds, and loads them into the local node's containerd
# when it is running (hack/node.sh loads them at start-up otherwise).
#
#   hack/images.sh [build]   base, pause, operator, trainer and test images (incremental)
#   hack/images.sh load      load the built images into the node's containerd (skips unchanged ones)
#   hack/images.sh names     print the images `build` produces, one per line
#   hack/images.sh id REF    the image ID of one of them (REF: operator, trainer, ...)
#
# What is built, and where it is cached (outside the repo, keyed by versions and inputs):
#   - a Debian $SUITE root filesystem with python3 made by mmdebstrap from Debian's packages,
#     imported as $BASE_IMAGE: the local stand-in for the public python:3.11-slim-bookworm;
#   - the pod sandbox image $PAUSE_IMAGE, from hack/images/pause.c, static;
#   - a wheelhouse of every pinned dependency (`pip wheel`, on the host), the Dockerfiles' extra
#     build context "wheels", so `pip install` inside the builds runs with --no-index;
#   - $OPERATOR_IMAGE and $TRAINER_IMAGE from operator/Dockerfile and trainer-image/Dockerfile,
#     with the names the chart's defaults use, and the test-only $FAKE_TRAINER_IMAGE;
#   - an OCI layout of each, from which `load` sends only the blobs containerd lacks.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
CACHE="${KUBEFT_CACHE:-$HOME/.cache/kubeft}"
VENV="${VENV:-$CACHE/venv-py3.11}"
SUITE=bookworm
MIRROR="${KUBEFT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
VERSION=$(awk -F'"' '/^appVersion:/ {print $2}' charts/kubeft/Chart.yaml)
REGISTRY="${KUBEFT_IMAGE_REGISTRY:-ghcr.io/kubeft}"
OPERATOR_IMAGE="$REGISTRY/operator:$VERSION"
TRAINER_IMAGE="$REGISTRY/trainer:$VERSION"
FAKE_TRAINER_IMAGE="localhost/kubeft/fake-trainer:dev"
BASE_IMAGE="localhost/kubeft/python:3.11-$SUITE"
PAUSE_IMAGE="localhost/kubeft/pause:3.10"
IMG="$CACHE/images-$SUITE"
LAYOUT="$IMG/oci"
CONTAINERD_SOCK="${KUBEFT_CONTAINERD_SOCK:-$CACHE/cluster/node/containerd.sock}"
export PATH="$VENV/bin:$PATH"

log() { echo ">> $*" >&2; }
bh() { buildah --root "$IMG/storage" --runroot "$IMG/run" --storage-driver overlay "$@"; }
have_image() { bh inspect --type image "$1" >/dev/null 2>&1; }

base_image() {
  have_image "$BASE_IMAGE" && return 0
  log "building the base image $BASE_IMAGE from Debian $SUITE packages (mmdebstrap; first time only)"
  local tar="$IMG/rootfs-$SUITE.tar" ctr
  mmdebstrap --quiet --variant=minbase --format=tar --include=python3,python3-venv,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
    "$SUITE" "$tar.tmp" "$MIRROR"
  mv "$tar.tmp" "$tar"
  ctr=$(bh from --pull=never scratch)
  bh add --quiet "$ctr" "$tar" /
  bh config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
    --cmd '["python3"]' --label "org.opencontainers.image.description=Debian $SUITE minbase with python3" "$ctr"
  bh commit --quiet --rm "$ctr" "$BASE_IMAGE" >/dev/null
  rm -f "$tar"
}

pause_image() {
  have_image "$PAUSE_IMAGE" && return 0
  log "building the pod sandbox image $PAUSE_IMAGE"
  local ctr work="$IMG/pause"
  mkdir -p "$work"
  gcc -static -Os -s -o "$work/pause" hack/images/pause.c
  ctr=$(bh from --pull=never scratch)
  bh copy --quiet "$ctr" "$work/pause" /pause
  bh config --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
  bh commit --quiet --rm "$ctr" "$PAUSE_IMAGE" >/dev/null
}

# The wheelhouse holds a wheel of every pinned requirement (and what they pull in) plus setuptools
# to build kubeft's own wheel; keyed by the requirement files, so a pin change makes a new one.
wheelhouse() {
  local key
  key=$(cat operator/requirements.txt trainer-image/requirements.txt hack/images/build-requirements.txt | sha256sum | cut -c1-12)
  WHEELS="$IMG/wheelhouse-$key"
  [ -f "$WHEELS/.complete" ] && return 0
  log "collecting the wheelhouse $WHEELS (pip wheel on the host; reuses pip's cache)"
  mkdir -p "$WHEELS"
  "$VENV/bin/pip" wheel --quiet --wheel-dir "$WHEELS" --requirement operator/requirements.txt \
    --requirement trainer-image/requirements.txt --requirement hack/images/build-requirements.txt
  touch "$WHEELS/.complete"
}

build() { # name dockerfile image
  log "building $3 from $2"
  # buildah runs in a network namespace of its own with nothing in it: the build cannot download
  # anything (chroot isolation shares the builder's network, which is this empty one).
  local id
  id=$(unshare --net -- buildah --root "$IMG/storage" --runroot "$IMG/run" --storage-driver overlay \
    build --quiet --layers --isolation chroot --network host --pull=never --format oci \
    --build-context "wheels=$WHEELS" --build-arg "BASE=$BASE_IMAGE" -f "$2" -t "$3" . | tail -n 1)
  export_layout "$1" "$3" "$id"
}

# Pushing to the OCI layout rewrites every layer (buildah exports them from its store), which is
# minutes for the trainer's torch layer: skip it when the image is the one pushed last time.
export_layout() { # ref image [image-id]
  local id=${3:-} stamp="$LAYOUT/.pushed-$1"
  [ -n "$id" ] || id=$(bh inspect --type image --format '{{.FromImageID}}' "$2")
  [ -f "$LAYOUT/index.json" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$id" ] && return 0
  bh push --quiet --disable-compression "$2" "oci:$LAYOUT:$1" >/dev/null
  echo "$id" >"$stamp"
}

load() {
  # A socket file can outlive its containerd (a reboot, a killed session): ask the daemon itself.
  if ! [ -S "$CONTAINERD_SOCK" ] || ! timeout 10 ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1; then
    log "containerd is not running ($CONTAINERD_SOCK): images not loaded"
    return 0
  fi
  local name image
  while read -r name image; do
    python3 hack/images/load.py --layout "$LAYOUT" --ref "$name" --image "$image" --address "$CONTAINERD_SOCK"
  done < <(names)
}

names() {
  printf '%s %s\n' pause "$PAUSE_IMAGE" base "$BASE_IMAGE" operator "$OPERATOR_IMAGE" trainer "$TRAINER_IMAGE" \
    fake-trainer "$FAKE_TRAINER_IMAGE"
}

case "${1:-build}" in
  build)
    mkdir -p "$IMG"
    start=$SECONDS
    base_image
    pause_image
    # The base and pause images go to the node as they are (the tests run pods of the base image).
    export_layout base "$BASE_IMAGE"
    export_layout pause "$PAUSE_IMAGE"
    wheelhouse
    build operator operator/Dockerfile "$OPERATOR_IMAGE"
    build trainer trainer-image/Dockerfile "$TRAINER_IMAGE"
    build fake-trainer hack/images/fake-trainer.Dockerfile "$FAKE_TRAINER_IMAGE"
    bh images --format '{{.Name}}:{{.Tag}} {{.Size}}' | grep -E "$REGISTRY|localhost/kubeft" >&2 || true
    log "images built in $((SECONDS - start)) s"
    load
    ;;
  load) load ;;
  names) names | awk '{print $2}' ;;
  id) bh inspect --type image --format '{{.FromImageID}}' "$(names | awk -v r="${2:?usage: $0 id REF}" '$1 == r {print $2}')" ;;
  *) echo "usage: $0 [build|load|names|id REF]" >&2; exit 2 ;;
esac
