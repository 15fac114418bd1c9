#!/usr/bin/env bash
# `make test`, and so `.ci/run`: lint, then the unit, integration and e2e tiers against the local
# cluster (real control plane, a real node running the locally built images) and a real S3
# server. pytest runs inside the cluster's network namespace (hack/cluster.sh exec), where the
# servers it starts for pods listen on the node's address. A cluster this script started is
# stopped at the end; one that was already running (a developer's) is reused and left running.
set -euo pipefail
cd "$(dirname "$0")/.."
# A CI sandbox may run us in a pid namespace of our own under the host's /proc, where containerd
# cannot find its own threads' network namespaces (/proc/PID/task/TID/ns/net). Then the whole run
# (cluster, mounts, tests, teardown) moves into one mount namespace with a /proc of our own.
read -r _self_pid _ </proc/self/stat 2>/dev/null || _self_pid=
if [ "$_self_pid" != "$BASHPID" ] && [ -z "${KUBEFT_OWN_PROC:-}" ]; then
  echo ">> /proc shows another pid namespace: running in a mount namespace with our own /proc" >&2
  exec env KUBEFT_OWN_PROC=1 unshare --mount-proc "$0" "$@"
fi
start=$(date +%s)
hack/lint.sh
started=0
# A cluster this script started goes down at the end, and must leave nothing behind: no pods,
# shims, mounts, network namespace or cgroups (the exit status says so). That holds for one whose
# start-up failed half way too: what did start is stopped.
cleanup() {
  local rc=$?
  if [ "$started" = 1 ]; then
    hack/cluster.sh down || rc=1
    hack/cluster.sh leftovers || rc=1
  fi
  exit $rc
}
trap cleanup EXIT
if ! hack/cluster.sh status >/dev/null 2>&1; then
  started=1
  hack/cluster.sh up
fi
hack/cluster.sh exec python -m pytest tests -q -p no:cacheprovider "$@"
echo ">> make test took $(( $(date +%s) - start )) s" >&2
