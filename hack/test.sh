#!/usr/bin/env bash
# `make test`, and so `.ci/run`: lint, then the unit, integration and e2e tiers against a real
# local control plane and a real S3 server on loopback. A cluster this script started is stopped
# at the end; one that was already running (a developer's) is reused and left running.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
hack/lint.sh
started=0
if ! hack/cluster.sh status >/dev/null 2>&1; then
  hack/cluster.sh up
  started=1
fi
cleanup() { if [ "$started" = 1 ]; then hack/cluster.sh down || true; fi; }
trap cleanup EXIT
python -m pytest tests -q -p no:cacheprovider "$@"
echo ">> make test took $(( $(date +%s) - start )) s" >&2
