#!/usr/bin/env bash
# The local Kubernetes control plane: `make cluster-up` / `make cluster-down` call this.
#
#   hack/cluster.sh up       start (or reuse) etcd, kube-apiserver, kube-controller-manager,
#                            kube-scheduler and the node agent; wait until the cluster is usable
#   hack/cluster.sh down     stop everything, pods included, and remove the cluster's state
#   hack/cluster.sh status   one line per component, then /readyz and the nodes
#
# Everything listens on 127.0.0.1 only, on ports from $KUBEFT_PORT_BASE (default 16440):
# etcd +0 (peer +1), kube-apiserver +3 (16443), controller-manager +4, scheduler +5, node agent +6.
# State lives in $KUBEFT_CLUSTER_DIR: pki/, etcd/, logs/<component>.log, run/<component>.pid,
# pods/ (the node agent's per-pod volumes and container logs) and admin.kubeconfig.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
CACHE="${KUBEFT_CACHE:-$HOME/.cache/kubeft}"
K8S_VERSION="${K8S_VERSION:-1.35.4}"
VENV="${VENV:-$CACHE/venv-py3.11}"
DIR="${KUBEFT_CLUSTER_DIR:-$CACHE/cluster}"
K8S_BIN="$CACHE/k8s-v$K8S_VERSION/bin"
TOOLS_BIN="$CACHE/bin"
BASE="${KUBEFT_PORT_BASE:-16440}"
ETCD_PORT=$((BASE + 0)) ETCD_PEER_PORT=$((BASE + 1)) API_PORT=$((BASE + 3))
CM_PORT=$((BASE + 4)) SCHED_PORT=$((BASE + 5)) AGENT_PORT=$((BASE + 6))
# The node agent's nodes (hack/nodeagent.py --help explains the syntax); ';' separates nodes.
NODES="${KUBEFT_NODES:-kubeft-gpu-0:cpu=8,memory=32Gi,nvidia.com/gpu=2,label.nvidia.com/gpu.product=NVIDIA-H100,label.nvidia.com/gpu.count=2;kubeft-cpu-0:cpu=8,memory=32Gi}"
# Extra env for every pod (space-separated K=V): nothing may reach the Hugging Face Hub at run time.
POD_ENV="${KUBEFT_POD_ENV-HF_HUB_OFFLINE=1}"
TIMEOUT="${KUBEFT_CLUSTER_TIMEOUT:-120}"
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler nodeagent)
SERVICE_CIDR=10.96.0.0/16
ISSUER=https://kubernetes.default.svc.cluster.local
export PATH="$VENV/bin:$TOOLS_BIN:$K8S_BIN:$PATH"

log() { echo ">> $*" >&2; }
die() { echo "cluster.sh: $*" >&2; exit 1; }
kc() { kubectl --kubeconfig "$DIR/admin.kubeconfig" --request-timeout=5s "$@"; }
pid_of() { cat "$DIR/run/$1.pid" 2>/dev/null || true; }
# Does /proc show this shell's own pid namespace? Not always: a sandbox may run us in a pid
# namespace of our own under the host's /proc, where /proc/PID is some other process.
read -r _self_pid _ </proc/self/stat 2>/dev/null || _self_pid=
PROC_IS_OURS=false
[ "$_self_pid" = "$BASHPID" ] && PROC_IS_OURS=true
# Alive (kill -0 works in any namespace) and, where /proc can tell, still the process we started
# rather than a later one that reused its pid.
alive() {
  local p cmd
  p=$(pid_of "$1")
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 1
  $PROC_IS_OURS || return 0
  cmd=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *"$1"* ]]
}

healthy() {
  for c in "${COMPONENTS[@]}"; do alive "$c" || return 1; done
  [ "$(kc get --raw /readyz 2>/dev/null)" = ok ] || return 1
  ! kc get nodes --no-headers 2>/dev/null | awk '{print $2}' | grep -qv '^Ready$'
}

# ---- PKI: one CA (EC P-256) signs every serving and client certificate -------------------------
cert() { # name subject ext-lines
  local name=$1 subj=$2 ext=$3
  [ -f "$DIR/pki/$name.crt" ] && return 0
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$DIR/pki/$name.key" \
    -subj "$subj" -out "$DIR/pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$DIR/pki/$name.csr" -CA "$DIR/pki/ca.crt" -CAkey "$DIR/pki/ca.key" -CAcreateserial \
    -days 3650 -out "$DIR/pki/$name.crt" -extfile <(printf '%b' "$ext") 2>/dev/null
  rm -f "$DIR/pki/$name.csr"
}

make_pki() { # idempotent per file, so a state dir from an older version gains only what it lacks
  mkdir -p "$DIR/pki" && chmod 700 "$DIR/pki"
  if [ ! -f "$DIR/pki/ca.crt" ]; then
    log "generating certificates in $DIR/pki"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$DIR/pki/ca.key" \
      -out "$DIR/pki/ca.crt" -days 3650 -subj "/CN=kubeft-local-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  fi
  local server="basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth"
  local client="basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth"
  local names="DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  cert apiserver "/CN=kube-apiserver" \
    "$server\nsubjectAltName=IP:127.0.0.1,IP:10.96.0.1,$names,DNS:kubernetes.default.svc.cluster.local"
  cert nodeagent-serving "/CN=kubeft-nodeagent" "$server\nsubjectAltName=IP:127.0.0.1,DNS:localhost"
  cert admin "/O=system:masters/CN=kubernetes-admin" "$client"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
  cert kube-controller-manager "/CN=system:kube-controller-manager" "$client"
  cert kube-scheduler "/CN=system:kube-scheduler" "$client"
  # The node agent stands in for several kubelets at once, so it cannot be one system:node:NAME.
  cert nodeagent "/O=system:masters/CN=kubeft-nodeagent" "$client"
  # The aggregation layer's identity; its CA file also lets controllers authenticate front-proxy requests.
  cert front-proxy-client "/CN=front-proxy-client" "$client"
  if [ ! -f "$DIR/pki/sa.pub" ]; then
    openssl ecparam -name prime256v1 -genkey -noout -out "$DIR/pki/sa.key"
    openssl ec -in "$DIR/pki/sa.key" -pubout -out "$DIR/pki/sa.pub" 2>/dev/null
  fi
}

kubeconfig() { # file user: written whole, then renamed, as readers may be using the old one
  local file=$1 user=$2
  cat >"$file.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kubeft
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 <"$DIR/pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$DIR/pki/$user.crt")
    client-key-data: $(base64 -w0 <"$DIR/pki/$user.key")
contexts:
- name: kubeft
  context: {cluster: kubeft, user: $user, namespace: default}
current-context: kubeft
EOF
  chmod 600 "$file.tmp"
  mv "$file.tmp" "$file"
}

STARTED=()
start() { # name command...
  local name=$1; shift
  STARTED+=("$name")
  alive "$name" && return 0
  log "starting $name"
  # hack/spawn.py records the daemon's own pid, in a session of its own (see its docstring).
  "$VENV/bin/python" "$root/hack/spawn.py" --log "$DIR/logs/$name.log" --pidfile "$DIR/run/$name.pid" -- "$@" 9>&-
}

exited() { # component: what a developer needs to see when it died during start-up
  echo "---- last lines of $DIR/logs/$1.log:" >&2
  tail -n 20 "$DIR/logs/$1.log" >&2 || true
  local taken
  taken=$(ss -Hltn 2>/dev/null | awk '{print $4}' | grep -E ":($ETCD_PORT|$ETCD_PEER_PORT|$API_PORT|$CM_PORT|$SCHED_PORT|$AGENT_PORT)\$" || true)
  [ -z "$taken" ] || echo "---- cluster ports already listening (another cluster? set KUBEFT_PORT_BASE): $taken" >&2
}

wait_for() { # description command...
  local what=$1; shift
  local deadline=$((SECONDS + TIMEOUT)) c
  until "$@" >/dev/null 2>&1; do
    for c in "${STARTED[@]}"; do
      alive "$c" || { exited "$c"; die "$c (pid $(pid_of "$c")) exited while waiting for $what; log: $DIR/logs/$c.log"; }
    done
    [ $SECONDS -lt $deadline ] || die "timed out after ${TIMEOUT}s waiting for $what; see $DIR/logs/"
    sleep 0.5
  done
}

etcd_healthy() { curl -fsS "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }
readyz() { [ "$(kc get --raw /readyz 2>/dev/null)" = ok ]; }
nodes_ready() {
  local want=$(($(tr -cd ';' <<<"$NODES" | wc -c) + 1)) ready
  ready=$(kc get nodes --no-headers 2>/dev/null | awk '$2 == "Ready"' | wc -l)
  [ "$ready" -ge "$want" ]
}

up() {
  for b in "$K8S_BIN/kube-apiserver" "$K8S_BIN/kube-controller-manager" "$K8S_BIN/kube-scheduler" \
    "$TOOLS_BIN/etcd" "$TOOLS_BIN/kubectl" "$VENV/bin/python"; do
    [ -x "$b" ] || die "$b is missing: run 'make setup' first"
  done
  if healthy; then
    log "cluster already up: KUBECONFIG=$DIR/admin.kubeconfig"
    return 0
  fi
  # Whatever is still running is kept (its pods too); what crashed or was never started starts now.
  mkdir -p "$DIR"/{logs,run,pods} && chmod 700 "$DIR"
  make_pki
  for u in admin kube-controller-manager kube-scheduler nodeagent; do kubeconfig "$DIR/pki/$u.kubeconfig" "$u"; done
  kubeconfig "$DIR/admin.kubeconfig" admin

  start etcd etcd --name kubeft --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "kubeft=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --auto-compaction-mode=periodic --auto-compaction-retention=10m \
    --quota-backend-bytes=2147483648 --log-level=warn
  wait_for "etcd" etcd_healthy

  start kube-apiserver kube-apiserver \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
    --endpoint-reconciler-type=none \
    --tls-cert-file="$DIR/pki/apiserver.crt" --tls-private-key-file="$DIR/pki/apiserver.key" \
    --client-ca-file="$DIR/pki/ca.crt" \
    --authorization-mode=Node,RBAC --allow-privileged=true \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --service-account-issuer="$ISSUER" \
    --service-account-key-file="$DIR/pki/sa.pub" --service-account-signing-key-file="$DIR/pki/sa.key" \
    --kubelet-client-certificate="$DIR/pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$DIR/pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$DIR/pki/ca.crt" \
    --kubelet-preferred-address-types=InternalIP \
    --requestheader-client-ca-file="$DIR/pki/ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$DIR/pki/front-proxy-client.crt" --proxy-client-key-file="$DIR/pki/front-proxy-client.key" \
    --profiling=false --v=1
  # The controllers exit when their RBAC roles are not bootstrapped yet, so they wait for /readyz.
  wait_for "kube-apiserver /readyz" readyz

  local k="$DIR/pki/kube-controller-manager.kubeconfig"
  start kube-controller-manager kube-controller-manager \
    --kubeconfig="$k" --authentication-kubeconfig="$k" --authorization-kubeconfig="$k" \
    --bind-address=127.0.0.1 --secure-port="$CM_PORT" --leader-elect=false \
    --controllers='*' --use-service-account-credentials=true \
    --root-ca-file="$DIR/pki/ca.crt" --service-account-private-key-file="$DIR/pki/sa.key" \
    --cluster-signing-cert-file="$DIR/pki/ca.crt" --cluster-signing-key-file="$DIR/pki/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --profiling=false --v=1

  k="$DIR/pki/kube-scheduler.kubeconfig"
  start kube-scheduler kube-scheduler \
    --kubeconfig="$k" --authentication-kubeconfig="$k" --authorization-kubeconfig="$k" \
    --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --leader-elect=false --profiling=false --v=1

  local node_args=() n
  IFS=';' read -ra specs <<<"$NODES"
  for n in "${specs[@]}"; do node_args+=(--node "$n"); done
  local pod_env=() kv
  for kv in $POD_ENV; do pod_env+=(--pod-env "$kv"); done
  start nodeagent "$VENV/bin/python" "$root/hack/nodeagent.py" \
    --kubeconfig "$DIR/pki/nodeagent.kubeconfig" --state-dir "$DIR/pods" --provision-dir "$DIR/volumes" \
    --port "$AGENT_PORT" --pod-path "$TOOLS_BIN" "${pod_env[@]}" \
    --tls-cert "$DIR/pki/nodeagent-serving.crt" --tls-key "$DIR/pki/nodeagent-serving.key" \
    --client-ca "$DIR/pki/ca.crt" "${node_args[@]}"

  wait_for "the nodes to be Ready" nodes_ready
  wait_for "the default ServiceAccount" kc get serviceaccount default -n default
  wait_for "the kube-root-ca.crt ConfigMap" kc get configmap kube-root-ca.crt -n default
  log "cluster up: export KUBECONFIG=$DIR/admin.kubeconfig"
}

terminate() { # component...: SIGTERM to their process groups at once, SIGKILL to what is left after 10 s
  local c p pids=()
  for c in "$@"; do
    p=$(pid_of "$c")
    [ -n "$p" ] || continue
    kill -TERM -- "-$p" 2>/dev/null || true
    pids+=("$p")
    rm -f "$DIR/run/$c.pid"
  done
  for _ in $(seq 1 50); do
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && break; p=; done
    [ -z "${p:-}" ] && break
    sleep 0.2
  done
  for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
}

stop_components() {
  # etcd goes last: the API server's graceful shutdown stalls without it.
  terminate nodeagent kube-scheduler kube-controller-manager kube-apiserver
  terminate etcd
  # Add-ons started beside the cluster (make demo's S3 server and operator) leave pid files here too.
  for f in "$DIR"/run/*.pid; do
    [ -f "$f" ] || continue
    p=$(cat "$f")
    kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
    rm -f "$f"
  done
  # Pod processes run in their own sessions; the agent stops them on SIGTERM, this catches the rest.
  local f p
  for f in "$DIR"/pods/*/*.pid; do
    [ -f "$f" ] || continue
    read -r p _ <"$f" || continue
    kill -KILL -- "-$p" 2>/dev/null || true
  done
}

down() {
  [ -d "$DIR" ] || { log "no cluster in $DIR"; return 0; }
  log "stopping the cluster in $DIR"
  stop_components
  rm -rf "$DIR"
}

status() {
  local c rc=0
  for c in "${COMPONENTS[@]}"; do
    if alive "$c"; then echo "$c: running (pid $(pid_of "$c"))"; else echo "$c: stopped"; rc=1; fi
  done
  echo "readyz: $(kc get --raw /readyz 2>/dev/null || echo unreachable)"
  kc get nodes 2>/dev/null || rc=1
  return $rc
}

lock() {
  mkdir -p "$(dirname "$DIR")"
  exec 9>"$DIR.lock"
  flock 9
}

case "${1:-}" in
  up) lock; up ;;
  down) lock; down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
