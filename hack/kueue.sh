#!/usr/bin/env bash
# Kueue (sigs.k8s.io/kueue), the real controller, beside the local cluster: no image, no registry.
#
#   hack/kueue.sh install   build Kueue's manager (cmd/kueue) from the module's source, fetched
#                           through the Go module proxy, into $KUBEFT_CACHE/kueue-v$KUEUE_VERSION/bin,
#                           and copy its CRDs to .../crds; a second call returns at once
#   hack/kueue.sh up        install the CRDs (server-side apply) into the cluster of $KUBECONFIG
#                           and start the manager as a daemon; wait until it is ready (/readyz)
#   hack/kueue.sh down      stop the manager (the CRDs and Kueue's objects stay)
#   hack/kueue.sh status    whether it runs, and its /readyz
#
# The manager runs with the cluster's admin kubeconfig (no ServiceAccount, so no RBAC), inside the
# cluster's network namespace when there is one ($KUBEFT_NETNS; KUEUE_NETNS= runs it on the host),
# where https://127.0.0.1:$API_PORT is the API server itself and its ports clash with nothing.
# Its configuration: only the batch/job integration, Jobs without a kueue.x-k8s.io/queue-name
# label left alone, no leader election, metrics and health on 127.0.0.1.
#
# Webhooks: none are registered. Kueue's internal certificate management would wait for
# webhook configurations and CRD conversion webhooks reached through a Service, which this
# cluster (no kube-proxy) cannot route, so it is off and a self-signed certificate is generated
# for the webhook server, which then listens on 127.0.0.1 and is never called. Without the
# webhooks, Jobs must be created suspended (`spec.suspend: true`) with the queue-name label;
# the controllers do the rest: a Workload per Job, admission against the ClusterQueue's quota,
# unsuspending on admission, suspending again on eviction or deactivation. Nothing validates
# Kueue's objects beyond their CRD schemas. docs/kueue-local.md has the details.
#
# With internal certificate management off, the manager reads its metrics certificate from the
# fixed path /etc/kueue/metrics/certs. Rather than write under the host's /etc, the manager runs
# in a mount namespace of its own in which a read-only overlay puts that directory over /etc.
#
# State (config, certificates, the overlay's layer) lives in $KUEUE_STATE_DIR/kueue, the log in
# $KUEUE_STATE_DIR/logs/kueue.log and the pid in $KUEUE_STATE_DIR/run/kueue.pid; the default is
# the cluster's state directory, so `hack/cluster.sh down` stops Kueue with everything else.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=hack/lib/daemon.sh
. "$root/hack/lib/daemon.sh"
CACHE="${KUBEFT_CACHE:-$HOME/.cache/kubeft}"
KUEUE_VERSION="${KUEUE_VERSION:-0.17.0}"
OUT="$CACHE/kueue-v$KUEUE_VERSION"
KUEUE_BIN="$OUT/bin/kueue"
VENV="${VENV:-$CACHE/venv-py3.11}"
CLUSTER_DIR="${KUBEFT_CLUSTER_DIR:-$CACHE/cluster}"
STATE="${KUEUE_STATE_DIR:-$CLUSTER_DIR}"
KDIR="$STATE/kueue"
LOG="$STATE/logs/kueue.log"
PIDFILE="$STATE/run/kueue.pid"
BASE="${KUBEFT_PORT_BASE:-16440}"
WEBHOOK_PORT="${KUEUE_WEBHOOK_PORT:-$((BASE + 20))}"
HEALTH_PORT="${KUEUE_HEALTH_PORT:-$((BASE + 21))}"
METRICS_PORT="${KUEUE_METRICS_PORT:-$((BASE + 22))}"
TIMEOUT="${KUEUE_TIMEOUT:-120}"
export KUBECONFIG="${KUBECONFIG:-$CLUSTER_DIR/admin.kubeconfig}"
# The namespace to run in: the cluster's when it exists, unless KUEUE_NETNS is set (empty: the host).
if [ -z "${KUEUE_NETNS+x}" ]; then
  KUEUE_NETNS="${KUBEFT_NETNS:-kubeft}"
  [ -e "/run/netns/$KUEUE_NETNS" ] || KUEUE_NETNS=
fi
export PATH="$VENV/bin:$CACHE/bin:$PATH"

log() { echo ">> $*" >&2; }
die() { echo "kueue.sh: $*" >&2; exit 1; }
kc() { kubectl --request-timeout=10s "$@"; }
here() { # command...: in the manager's network namespace
  if [ -n "$KUEUE_NETNS" ]; then nsenter --net="/run/netns/$KUEUE_NETNS" -- "$@"; else "$@"; fi
}
pid_of() { cat "$PIDFILE" 2>/dev/null || true; }
# Alive and still the manager (hack/lib/daemon.sh).
alive() { daemon_alive "$(pid_of)" kueue; }
readyz() { [ "$(here curl -fsS --max-time 2 "http://127.0.0.1:$HEALTH_PORT/readyz" 2>/dev/null)" = ok ]; }

install() {
  local crds=(admissionchecks clusterqueues cohorts localqueues multikueueclusters multikueueconfigs
    provisioningrequestconfigs resourceflavors topologies workloadpriorityclasses workloads)
  have() {
    [ -x "$KUEUE_BIN" ] || return 1
    local c; for c in "${crds[@]}"; do [ -f "$OUT/crds/kueue.x-k8s.io_$c.yaml" ] || return 1; done
  }
  have && return 0
  command -v go >/dev/null || die "go is missing (Go >= 1.25 builds Kueue v$KUEUE_VERSION)"
  local modcache src before after t0
  modcache=$(go env GOMODCACHE)
  before=$(du -sm "$modcache" 2>/dev/null | cut -f1 || echo 0)
  t0=$SECONDS
  log "fetching sigs.k8s.io/kueue@v$KUEUE_VERSION through the Go module proxy"
  src=$(go mod download -json "sigs.k8s.io/kueue@v$KUEUE_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  mkdir -p "$OUT/bin" "$OUT/crds"
  local c
  for c in "${crds[@]}"; do cp "$src/config/components/crd/bases/kueue.x-k8s.io_$c.yaml" "$OUT/crds/"; done
  chmod 644 "$OUT"/crds/*.yaml
  if [ ! -x "$KUEUE_BIN" ]; then
    # Kueue's go.mod has no replace directives: its own module, as published, is the main module
    # (go.sum included); only the packages cmd/kueue imports are downloaded.
    log "building Kueue v$KUEUE_VERSION into $OUT/bin (first time only; several minutes on 2 cores)"
    local v=sigs.k8s.io/kueue/pkg/version
    (cd "$src" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath \
      -ldflags "-s -w -X $v.GitVersion=v$KUEUE_VERSION -X $v.GitCommit=module-proxy -X $v.BuildDate=1970-01-01" \
      -o "$KUEUE_BIN.tmp" ./cmd/kueue)
    mv "$KUEUE_BIN.tmp" "$KUEUE_BIN"
  fi
  after=$(du -sm "$modcache" 2>/dev/null | cut -f1 || echo 0)
  log "done in $((SECONDS - t0)) s: $KUEUE_BIN ($(du -m "$KUEUE_BIN" | cut -f1) MiB); module cache $modcache: ${before} -> ${after} MiB"
}

config() {
  mkdir -p "$KDIR/certs" "$KDIR/etc-layer/kueue/metrics/certs" "$STATE/logs" "$STATE/run"
  chmod 700 "$KDIR"
  if [ ! -f "$KDIR/certs/tls.crt" ]; then
    # Served by the (uncalled) webhook server and the metrics endpoint: self-signed is enough.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
      -keyout "$KDIR/certs/tls.key" -out "$KDIR/certs/tls.crt" -subj "/CN=kueue-local" \
      -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>/dev/null
  fi
  cp "$KDIR/certs/tls.crt" "$KDIR/certs/tls.key" "$KDIR/etc-layer/kueue/metrics/certs/"
  cat >"$KDIR/config.yaml" <<EOF
apiVersion: config.kueue.x-k8s.io/v1beta2
kind: Configuration
namespace: kueue-system
manageJobsWithoutQueueName: false
leaderElection:
  leaderElect: false
health:
  healthProbeBindAddress: 127.0.0.1:$HEALTH_PORT
metrics:
  bindAddress: 127.0.0.1:$METRICS_PORT
webhook:
  host: 127.0.0.1
  port: $WEBHOOK_PORT
  certDir: $KDIR/certs
internalCertManagement:
  enable: false
integrations:
  frameworks:
  - batch/job
featureGates:
  # the visibility API server would need its certificate at the fixed path /visibility
  VisibilityOnDemand: false
  # MultiKueue watches Secrets in the (absent) kueue-system namespace; one cluster needs none of it
  MultiKueue: false
EOF
}

up() {
  [ -x "$KUEUE_BIN" ] || die "$KUEUE_BIN is missing: run 'hack/kueue.sh install' first"
  [ -f "$KUBECONFIG" ] || die "no kubeconfig at $KUBECONFIG (start the cluster, or set KUBECONFIG)"
  [ "$(id -u)" = 0 ] || [ -z "$KUEUE_NETNS" ] || die "running in the network namespace $KUEUE_NETNS needs root"
  if alive && readyz; then
    log "kueue already up (pid $(pid_of))"
    return 0
  fi
  local t0=$SECONDS
  log "applying Kueue's CRDs"
  kc apply --server-side --force-conflicts --field-manager=kubeft-kueue -f "$OUT/crds" >/dev/null
  kc wait --for=condition=Established --timeout="${TIMEOUT}s" -f "$OUT/crds" >/dev/null
  config
  if ! alive; then
    log "starting kueue${KUEUE_NETNS:+ in netns $KUEUE_NETNS} (log: $LOG)"
    # A mount namespace of its own (a user namespace too when not root), where a read-only
    # overlay adds kueue/metrics/certs to /etc; the shell execs the manager, so the pid is its own.
    local ns=(unshare --mount --propagation private)
    [ "$(id -u)" = 0 ] || ns=(unshare --user --map-root-user --mount --propagation private)
    local cmd=("${ns[@]}" -- sh -c 'mount -t overlay -o "lowerdir=$1:/etc" kueue-etc /etc && shift && exec "$@"'
      sh "$KDIR/etc-layer" "$KUEUE_BIN" --config "$KDIR/config.yaml" --kubeconfig "$KUBECONFIG" --zap-log-level=info)
    [ -n "$KUEUE_NETNS" ] && cmd=(nsenter --net="/run/netns/$KUEUE_NETNS" -- "${cmd[@]}")
    local py="$VENV/bin/python"; [ -x "$py" ] || py=python3
    "$py" "$root/hack/spawn.py" --log "$LOG" --pidfile "$PIDFILE" -- "${cmd[@]}"
  fi
  local deadline=$((SECONDS + TIMEOUT))
  until readyz; do
    if ! alive; then
      echo "---- last lines of $LOG:" >&2; tail -n 20 "$LOG" >&2 || true
      die "kueue (pid $(pid_of)) exited while starting; log: $LOG"
    fi
    [ $SECONDS -lt $deadline ] || die "timed out after ${TIMEOUT}s waiting for kueue's /readyz; log: $LOG"
    sleep 0.5
  done
  log "kueue v$KUEUE_VERSION ready in $((SECONDS - t0)) s (pid $(pid_of), health http://127.0.0.1:$HEALTH_PORT${KUEUE_NETNS:+ in netns $KUEUE_NETNS})"
}

down() {
  local p; p=$(pid_of)
  if ! alive; then
    log "kueue is not running"
    rm -f "$PIDFILE"
    return 0
  fi
  log "stopping kueue (pid $p)"
  kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
  local i
  for i in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$p" 2>/dev/null && { log "kueue did not stop in 10 s: SIGKILL"; kill -KILL -- "-$p" 2>/dev/null || true; }
  rm -f "$PIDFILE"
  rm -rf "$KDIR"
}

status() {
  if alive; then echo "kueue: running (pid $(pid_of))"; else echo "kueue: stopped"; return 1; fi
  echo "readyz: $(here curl -fsS --max-time 2 "http://127.0.0.1:$HEALTH_PORT/readyz" 2>/dev/null || echo unreachable)"
}

case "${1:-}" in
  install) install ;;
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 install|up|down|status" >&2; exit 2 ;;
esac
