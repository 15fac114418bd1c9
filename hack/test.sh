#!/usr/bin/env bash
# `make test`, and so `.ci/run`: lint, then the unit, integration and e2e tiers against the local
# cluster (real control plane, a real node running the locally built images) and a real S3
# server. pytest runs inside the cluster's network namespace (hack/cluster.sh exec), where the
# servers it starts for pods listen on the node's address. A cluster this script started is
# stopped at the end; one that was already running (a developer's) is reused and left running.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
hack/lint.sh
started=0
if ! hack/cluster.sh status >/dev/null 2>&1; then
  hack/cluster.sh up
  started=1
fi
# A cluster this script started goes down at the end, and must leave nothing behind: no pods,
# shims, mounts, network namespace or cgroups (the exit status says so).
cleanup() {
  local rc=$?
  if [ "$started" = 1 ]; then
    hack/cluster.sh down || rc=1
    hack/cluster.sh leftovers || rc=1
  fi
  exit $rc
}
trap cleanup EXIT
hack/cluster.sh exec python -m pytest tests -q -p no:cacheprovider "$@"
echo ">> make test took $(( $(date +%s) - start )) s" >&2
