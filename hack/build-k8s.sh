#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler and kubelet from source through the Go
# module proxy, into a version-keyed cache outside the repo. Called by hack/install.sh; a second
# call with the binaries present returns at once.
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces every staging module with a
# path under staging/. A throwaway module that requires k8s.io/kubernetes and pins each staging
# module to its published v0.Y.Z tag builds the same code.
set -euo pipefail
K8S_VERSION="${K8S_VERSION:-1.35.4}"
CACHE="${KUBEFT_CACHE:-$HOME/.cache/kubeft}"
OUT="$CACHE/k8s-v$K8S_VERSION"
BINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet)

have_all() { for b in "${BINS[@]}"; do [ -x "$OUT/bin/$b" ] || return 1; done; }
if have_all; then exit 0; fi

minor="${K8S_VERSION#*.}"; minor="${minor%%.*}"
staging_version="v0.$minor.${K8S_VERSION##*.}"
work="$OUT/build"
mkdir -p "$work" "$OUT/bin"
cd "$work"
echo ">> building Kubernetes v$K8S_VERSION binaries into $OUT/bin (first time only; takes many minutes)" >&2

gomod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
{
  echo "module kubeft.local/k8sbuild"
  echo
  echo "go 1.25"
  echo
  echo "replace ("
  # every staging module appears in k8s.io/kubernetes's require block at v0.0.0
  grep -E '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$gomod" | awk -v v="$staging_version" '{print "\t" $1 " => " $1 " " v}'
  echo ")"
} > go.mod
export GOFLAGS="-mod=mod -buildvcs=false"
go get "k8s.io/kubernetes@v$K8S_VERSION" >&2
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
for b in "${BINS[@]}"; do
  [ -x "$OUT/bin/$b" ] && continue
  echo ">> go build $b" >&2
  go build -trimpath -ldflags "$ldflags" -o "$OUT/bin/$b.tmp" "k8s.io/kubernetes/cmd/$b"
  mv "$OUT/bin/$b.tmp" "$OUT/bin/$b"
done
echo ">> done: $OUT/bin" >&2
