#!/usr/bin/env bash
# The local object store: SeaweedFS (github.com/seaweedfs/seaweedfs, Apache-2.0), a real
# S3-compatible server that platform teams deploy, with its data on disk. No image, no registry.
#
#   hack/s3.sh install   build the `weed` binary from the module's source, fetched through the Go
#                        module proxy, into $KUBEFT_CACHE/seaweedfs-$SEAWEEDFS_VERSION/bin; a second
#                        call returns at once
#   hack/s3.sh up        start the store (master, volume server, filer and S3 gateway in one
#                        `weed server` process) and wait until a signed write and read succeed;
#                        also start a forwarder so that the host reaches it on 127.0.0.1
#   hack/s3.sh down      stop the store and the forwarder and delete its data
#   hack/s3.sh stop      stop the store, keeping its data (a later `start` serves the same objects)
#   hack/s3.sh start     start it again on the same data, as `up` does
#   hack/s3.sh restart   stop + start: what a store restart looks like to its clients
#   hack/s3.sh status    whether it runs, and a signed request's answer
#   hack/s3.sh endpoint  the endpoint for clients in the cluster's network namespace (pods, tests)
#   hack/s3.sh env       `export` lines for the host: endpoint and the read-write keys
#
# Where it listens: on the node's address inside the cluster's network namespace ($KUBEFT_NETNS,
# when it exists), so trainer pods and the tests (which run in that namespace through
# `hack/cluster.sh exec`) reach it on http://$KUBEFT_NODE_IP:$S3_PORT. Without that namespace,
# it listens on 127.0.0.1. The forwarder (hack/nsproxy.py) makes the same port answer on the
# host's 127.0.0.1, for `aws s3 ls` and `tensorboard --logdir s3://...` there.
#
# Credentials: every request must be signed (signature v4) by one of the identities in
# hack/s3/identities.json: kubeft-local (read-write, may create buckets) and kubeft-reader
# (get and list only). They are local test keys, committed on purpose; never reuse them.
#
# State: data in $S3_STATE_DIR/s3/data, the log in $S3_STATE_DIR/logs/s3.log, pids in
# $S3_STATE_DIR/run/; the default is the cluster's state directory, so `hack/cluster.sh down` stops
# the store and removes its data with everything else. docs/local-cluster.md has the details.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=hack/lib/daemon.sh
. "$root/hack/lib/daemon.sh"
CACHE="${KUBEFT_CACHE:-$HOME/.cache/kubeft}"
# SeaweedFS 4.53: its module path has no semantic version tags, so the proxy serves it as a
# pseudo-version (this one is the 4.53 release commit).
SEAWEEDFS_MODULE=github.com/seaweedfs/seaweedfs
SEAWEEDFS_VERSION="${SEAWEEDFS_VERSION:-4.53}"
SEAWEEDFS_PSEUDO="${SEAWEEDFS_PSEUDO:-v0.0.0-20261109003541-7506e5f91cd6}"
OUT="$CACHE/seaweedfs-$SEAWEEDFS_VERSION"
WEED="$OUT/bin/weed"
VENV="${VENV:-$CACHE/venv-py3.11}"
CLUSTER_DIR="${KUBEFT_CLUSTER_DIR:-$CACHE/cluster}"
STATE="${S3_STATE_DIR:-$CLUSTER_DIR}"
DATA="$STATE/s3/data"
LOG="$STATE/logs/s3.log"
PIDFILE="$STATE/run/s3.pid"
FWD_PIDFILE="$STATE/run/s3-forward.pid"
IDENTITIES="$root/hack/s3/identities.json"
S3_PORT="${S3_PORT:-19000}"
MASTER_PORT=$((S3_PORT + 1)) VOLUME_PORT=$((S3_PORT + 2)) FILER_PORT=$((S3_PORT + 3))
TIMEOUT="${S3_TIMEOUT:-120}"
if [ -z "${S3_NETNS+x}" ]; then
  S3_NETNS="${KUBEFT_NETNS:-kubeft}"
  [ -e "/run/netns/$S3_NETNS" ] || S3_NETNS=
fi
if [ -n "$S3_NETNS" ]; then HOST="${KUBEFT_NODE_IP:-10.250.0.1}"; else HOST=127.0.0.1; fi
ENDPOINT="http://$HOST:$S3_PORT"
export PATH="$VENV/bin:$CACHE/bin:$PATH"

log() { echo ">> $*" >&2; }
die() { echo "s3.sh: $*" >&2; exit 1; }
here() { # command...: in the store's network namespace
  if [ -n "$S3_NETNS" ]; then nsenter --net="/run/netns/$S3_NETNS" -- "$@"; else "$@"; fi
}
key() { python3 -c 'import json,sys; i=json.load(open(sys.argv[1]))["identities"][0]["credentials"][0]; print(i[sys.argv[2]])' "$IDENTITIES" "$1"; }
# Alive and still the process started (hack/lib/daemon.sh).
alive() { daemon_alive "$(cat "$1" 2>/dev/null || true)" "$2"; } # pidfile word
# A signed request (curl's own signature v4) with the read-write identity.
signed() { # curl args...
  here curl -fsS --max-time 10 --aws-sigv4 "aws:amz:us-east-1:s3" --user "$(key accessKey):$(key secretKey)" "$@"
}
# Ready means a signed write and read through the S3 gateway work, which needs the master, a
# volume server and the filer, not only a listening port.
ready() {
  local probe="$STATE/s3/probe"
  signed -X PUT "$ENDPOINT/kubeft-health" -o /dev/null 2>/dev/null || true
  echo "kubeft $$" >"$probe"
  signed -T "$probe" "$ENDPOINT/kubeft-health/probe" -o /dev/null 2>/dev/null &&
    [ "$(signed "$ENDPOINT/kubeft-health/probe" 2>/dev/null)" = "kubeft $$" ]
}

install() {
  [ -x "$WEED" ] && return 0
  command -v go >/dev/null || die "go is missing (Go >= 1.26 builds SeaweedFS $SEAWEEDFS_VERSION)"
  local src t0=$SECONDS
  log "fetching $SEAWEEDFS_MODULE@$SEAWEEDFS_PSEUDO (SeaweedFS $SEAWEEDFS_VERSION) through the Go module proxy"
  src=$(go mod download -json "$SEAWEEDFS_MODULE@$SEAWEEDFS_PSEUDO" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  mkdir -p "$OUT/bin"
  # The module's go.mod is the main module here (its one replace directive points at another
  # published module, so it resolves through the proxy too); only what cmd weed imports is fetched.
  log "building weed into $OUT/bin (first time only; about 5 minutes on 2 cores)"
  (cd "$src/weed" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -ldflags "-s -w" -o "$WEED.tmp" .)
  mv "$WEED.tmp" "$WEED"
  log "done in $((SECONDS - t0)) s: $WEED ($(du -m "$WEED" | cut -f1) MiB)"
}

start() {
  [ -x "$WEED" ] || die "$WEED is missing: run 'hack/s3.sh install' first"
  [ "$(id -u)" = 0 ] || [ -z "$S3_NETNS" ] || die "running in the network namespace $S3_NETNS needs root"
  mkdir -p "$DATA" "$STATE/logs" "$STATE/run"
  local py="$VENV/bin/python"; [ -x "$py" ] || py=python3
  if ! alive "$PIDFILE" weed; then
    log "starting SeaweedFS $SEAWEEDFS_VERSION on $ENDPOINT${S3_NETNS:+ in netns $S3_NETNS} (data: $DATA, log: $LOG)"
    # AWS_* in the caller's environment would be read by the gateway as its own credentials.
    local cmd=(env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE
      "$WEED" -config_dir="$root/hack/s3" server -dir="$DATA" -ip="$HOST" -ip.bind="$HOST"
      -master.port="$MASTER_PORT" -master.port.grpc=$((MASTER_PORT + 10000))
      -volume.port="$VOLUME_PORT" -volume.port.grpc=$((VOLUME_PORT + 10000))
      -filer.port="$FILER_PORT" -filer.port.grpc=$((FILER_PORT + 10000))
      -master.volumeSizeLimitMB=256 -master.electionTimeout=1s -volume.max=1000 -volume.preStopSeconds=0
      -s3 -s3.port="$S3_PORT" -s3.port.grpc=$((S3_PORT + 10000)) -s3.config="$IDENTITIES"
      -s3.autoCreateBucket=false -s3.allowDeleteBucketNotEmpty=true -s3.port.iceberg=0 -s3.port.lance=0 -s3.iam=false -s3.localSocket="$STATE/s3/s3.sock"
      -master.telemetry=false)
    [ -n "$S3_NETNS" ] && cmd=(nsenter --net="/run/netns/$S3_NETNS" -- "${cmd[@]}")
    "$py" "$root/hack/spawn.py" --log "$LOG" --pidfile "$PIDFILE" -- "${cmd[@]}"
  fi
  if [ -n "$S3_NETNS" ] && ! alive "$FWD_PIDFILE" nsproxy; then
    "$py" "$root/hack/spawn.py" --log "$STATE/logs/s3-forward.log" --pidfile "$FWD_PIDFILE" -- \
      "$py" "$root/hack/nsproxy.py" --listen "127.0.0.1:$S3_PORT" --netns "/run/netns/$S3_NETNS" --connect "$HOST:$S3_PORT"
  fi
  local t0=$SECONDS deadline=$((SECONDS + TIMEOUT))
  until ready; do
    if ! alive "$PIDFILE" weed; then
      echo "---- last lines of $LOG:" >&2; tail -n 20 "$LOG" >&2 || true
      die "SeaweedFS (pid $(cat "$PIDFILE" 2>/dev/null)) exited while starting; log: $LOG"
    fi
    [ $SECONDS -lt $deadline ] || die "timed out after ${TIMEOUT}s waiting for a signed write to $ENDPOINT; log: $LOG"
    sleep 0.5
  done
  log "S3 ready in $((SECONDS - t0)) s on $ENDPOINT${S3_NETNS:+ (host: http://127.0.0.1:$S3_PORT)}"
}

terminate() { # pidfile word
  local p; p=$(cat "$1" 2>/dev/null || true)
  if alive "$1" "$2"; then
    kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
    local i
    # weed's shutdown stalls after its servers stop; what it wrote is in files by then, so after
    # a short grace it is killed (a store crash is one of the faults the tests want anyway).
    for i in $(seq 1 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -KILL -- "-$p" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$1"
}

stop() { terminate "$PIDFILE" weed; }

down() {
  stop
  terminate "$FWD_PIDFILE" nsproxy
  rm -rf "$STATE/s3"
}

status() {
  if alive "$PIDFILE" weed; then echo "s3: running (pid $(cat "$PIDFILE")) on $ENDPOINT"; else echo "s3: stopped"; return 1; fi
  signed "$ENDPOINT/" -o /dev/null -w 'signed ListBuckets: HTTP %{http_code}\n' || true
}

case "${1:-}" in
  install) install ;;
  up | start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  down) down ;;
  status) status ;;
  endpoint) echo "$ENDPOINT" ;;
  env)
    echo "export AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT S3_ENDPOINT=http://127.0.0.1:$S3_PORT"
    echo "export AWS_ACCESS_KEY_ID=$(key accessKey) AWS_SECRET_ACCESS_KEY=$(key secretKey) AWS_DEFAULT_REGION=us-east-1"
    ;;
  *) echo "usage: $0 install|up|down|stop|start|restart|status|endpoint|env" >&2; exit 2 ;;
esac
