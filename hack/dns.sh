#!/usr/bin/env bash
# The local cluster's DNS: CoreDNS (github.com/coredns/coredns, Apache-2.0), the server that
# kubeadm and most distributions run as cluster DNS, answering for cluster.local from the API
# server. No image, no registry: a binary built from source, run beside the kubelet.
#
#   hack/dns.sh install   build CoreDNS with only the plugins that hack/dns/main.go imports, from the
#                         module's source fetched through the Go module proxy, into
#                         $KUBEFT_CACHE/coredns-$COREDNS_VERSION/bin; a second call returns at once
#                         (it builds again only when hack/dns/main.go changed)
#   hack/dns.sh up        grant its identity read access (hack/dns/rbac.yaml), write its Corefile,
#                         start it and wait until it answers for kubernetes.default.svc.cluster.local
#   hack/dns.sh down      stop it and remove its Corefile
#   hack/dns.sh status    whether it runs, and its answer for the API server's Service
#   hack/dns.sh address   the address it serves on: the kubelet's clusterDNS
#
# Where it listens: UDP and TCP port 53 on the node's address inside the cluster's network namespace
# ($KUBEFT_NETNS, $KUBEFT_NODE_IP), which every pod reaches; its readiness endpoint (CoreDNS's
# `ready` plugin) on 127.0.0.1:$DNS_READY_PORT in that namespace. What it answers: cluster.local
# and the reverse zones, from the kubernetes plugin (Services, headless Services' endpoints by
# pod hostname, SRV records). Every other name is REFUSED at once: there is no `forward`, as the
# cluster has no outside network and a lookup must never hang.
#
# Identity: the client certificate `kubeft:coredns` that hack/cluster.sh issues with the cluster's
# CA (pki/coredns.kubeconfig); the ClusterRole in hack/dns/rbac.yaml lets it list and watch
# Services, EndpointSlices and Namespaces, nothing else.
#
# State, under the cluster's state directory: dns/Corefile, logs/coredns.log (one line per query,
# from the `log` plugin), run/coredns.pid. `hack/cluster.sh up` starts it once the API server
# answers and before the node runs pods; `hack/cluster.sh down` stops it. docs/local-cluster.md,
# "Cluster DNS", has the details.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=hack/lib/daemon.sh
. "$root/hack/lib/daemon.sh"
CACHE="${KUBEFT_CACHE:-$HOME/.cache/kubeft}"
# CoreDNS 1.14.7 pins the Kubernetes client libraries at v0.35.4, the cluster's own version (1.15.0
# moved to v0.37); both build with Go 1.26.
COREDNS_MODULE=github.com/coredns/coredns
COREDNS_VERSION="${COREDNS_VERSION:-1.14.7}"
OUT="$CACHE/coredns-$COREDNS_VERSION"
BIN="$OUT/bin/coredns"
MAIN_GO="$root/hack/dns/main.go"
VENV="${VENV:-$CACHE/venv-py3.11}"
DIR="${KUBEFT_CLUSTER_DIR:-$CACHE/cluster}"
COREFILE="$DIR/dns/Corefile"
LOG="$DIR/logs/coredns.log"
PIDFILE="$DIR/run/coredns.pid"
DNS_KUBECONFIG="$DIR/pki/coredns.kubeconfig"
NETNS="${KUBEFT_NETNS:-kubeft}"
NETNS_PATH="/run/netns/$NETNS"
DNS_IP="${KUBEFT_NODE_IP:-10.250.0.1}"
READY_PORT="${DNS_READY_PORT:-18181}"
TIMEOUT="${DNS_TIMEOUT:-60}"
export PATH="$VENV/bin:$CACHE/bin:$PATH"
PY="$VENV/bin/python"
[ -x "$PY" ] || PY=python3

log() { echo ">> $*" >&2; }
die() { echo "dns.sh: $*" >&2; exit 1; }
here() { nsenter --net="$NETNS_PATH" -- "$@"; }
ask() { # name [query.py args...]: one question to the cluster's DNS, from inside its namespace
  here "$PY" "$root/hack/dns/query.py" --server "$DNS_IP" "$@"
}
# Alive and still CoreDNS (hack/lib/daemon.sh).
alive() { daemon_alive "$(cat "$PIDFILE" 2>/dev/null || true)" coredns; }
# Ready means the kubernetes plugin has synced with the API server (the `ready` plugin's 200) and a
# real query over the pods' path answers with the API server's Service.
ready() {
  [ "$(here curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$READY_PORT/ready" 2>/dev/null)" = 200 ] &&
    ask kubernetes.default.svc.cluster.local --timeout 1 >/dev/null 2>&1
}

install() {
  if [ -x "$BIN" ] && cmp -s "$MAIN_GO" "$OUT/build/main.go"; then return 0; fi
  command -v go >/dev/null || die "go is missing (Go >= 1.25 builds CoreDNS $COREDNS_VERSION)"
  local t0=$SECONDS
  mkdir -p "$OUT/build" "$OUT/bin"
  # A throwaway module holding our main package; `go mod tidy` fetches, through the Go module
  # proxy, only the modules that the imported plugins need (not those of CoreDNS's ~60 others).
  cp "$MAIN_GO" "$OUT/build/main.go.tmp"
  printf 'module kubeft.local/coredns\n\ngo 1.25.0\n\nrequire %s v%s\n' "$COREDNS_MODULE" "$COREDNS_VERSION" >"$OUT/build/go.mod"
  rm -f "$OUT/build/go.sum" "$OUT/build/main.go"
  mv "$OUT/build/main.go.tmp" "$OUT/build/main.go"
  log "fetching $COREDNS_MODULE@v$COREDNS_VERSION and the modules of its kubernetes plugin through the Go module proxy"
  (cd "$OUT/build" && GOFLAGS="-mod=mod -buildvcs=false" go mod tidy)
  log "building coredns into $OUT/bin (first time only; 3 to 7 minutes on 2 cores)"
  (cd "$OUT/build" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -ldflags "-s -w" -o "$BIN.tmp" .)
  mv "$BIN.tmp" "$BIN"
  log "done in $((SECONDS - t0)) s: $BIN ($(du -m "$BIN" | cut -f1) MiB; plugins: $("$BIN" -plugins | xargs))"
}

corefile() { # written whole, then renamed
  mkdir -p "$DIR/dns"
  cat >"$COREFILE.tmp" <<EOF
# Written by hack/dns.sh up: the local cluster's DNS. Names outside these zones match no server
# block, and CoreDNS answers REFUSED for them at once.
cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
    bind $DNS_IP
    ready 127.0.0.1:$READY_PORT
    errors
    log
    # The kubernetes plugin answers from its watch caches, so a cache only spares a map lookup;
    # caching "no such name" would hide a peer pod that appeared a moment ago.
    cache 5 {
        disable denial
    }
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $DNS_KUBECONFIG
        ttl 5
    }
}
EOF
  mv "$COREFILE.tmp" "$COREFILE"
}

up() {
  [ -x "$BIN" ] || die "$BIN is missing: run 'hack/dns.sh install' (or 'make setup') first"
  [ "$(id -u)" = 0 ] || die "serving port 53 in the network namespace $NETNS needs root"
  [ -e "$NETNS_PATH" ] || die "no network namespace $NETNS_PATH: start the cluster with 'hack/cluster.sh up'"
  [ -f "$DNS_KUBECONFIG" ] || die "$DNS_KUBECONFIG is missing: 'hack/cluster.sh up' issues it"
  mkdir -p "$DIR/logs" "$DIR/run"
  kubectl --kubeconfig "$DIR/admin.kubeconfig" --request-timeout=10s apply --server-side \
    --field-manager=kubeft-dns -f "$root/hack/dns/rbac.yaml" >/dev/null
  corefile
  if ! alive; then
    log "starting CoreDNS $COREDNS_VERSION on $DNS_IP:53 in netns $NETNS (log: $LOG)"
    "$PY" "$root/hack/spawn.py" --log "$LOG" --pidfile "$PIDFILE" -- \
      nsenter --net="$NETNS_PATH" -- "$BIN" -conf "$COREFILE"
  fi
  local t0=$SECONDS deadline=$((SECONDS + TIMEOUT))
  until ready; do
    if ! alive; then
      echo "---- last lines of $LOG:" >&2; tail -n 20 "$LOG" >&2 || true
      die "CoreDNS (pid $(cat "$PIDFILE" 2>/dev/null)) exited while starting; log: $LOG"
    fi
    [ $SECONDS -lt $deadline ] || die "timed out after ${TIMEOUT}s waiting for CoreDNS to answer on $DNS_IP; log: $LOG"
    sleep 0.5
  done
  log "cluster DNS ready in $((SECONDS - t0)) s on $DNS_IP:53 (cluster.local)"
}

down() {
  local p i
  p=$(cat "$PIDFILE" 2>/dev/null || true)
  if alive; then
    # Its own session (hack/spawn.py): the group is CoreDNS alone. It exits within a second of SIGTERM.
    kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$p" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
  rm -rf "$DIR/dns"
}

status() {
  if alive; then echo "coredns: running (pid $(cat "$PIDFILE")) on $DNS_IP:53"; else echo "coredns: stopped"; return 1; fi
  ask kubernetes.default.svc.cluster.local || true
}

case "${1:-}" in
  install) install ;;
  up) up ;;
  down) down ;;
  status) status ;;
  address) echo "$DNS_IP" ;;
  *) echo "usage: $0 install|up|down|status|address" >&2; exit 2 ;;
esac
