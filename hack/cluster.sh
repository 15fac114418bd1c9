#!/usr/bin/env bash
# The local Kubernetes cluster: `make cluster-up` / `make cluster-down` call this.
#
#   hack/cluster.sh up       start (or reuse) etcd, kube-apiserver, kube-controller-manager,
#                            kube-scheduler, the cluster DNS (CoreDNS, hack/dns.sh) and one real
#                            node (containerd + runc + CNI + kubelet); wait until the cluster is usable
#   hack/cluster.sh down     stop everything, pods included, and remove the cluster's state
#   hack/cluster.sh status   one line per component, then /readyz and the nodes
#   hack/cluster.sh exec CMD run CMD inside the cluster's network namespace (tests, the demo)
#   hack/cluster.sh leftovers  after `down`: list anything left behind (fails if there is any)
#
# The whole cluster lives in a network namespace of its own, $KUBEFT_NETNS (default "kubeft"),
# created here: there the node has a real address ($KUBEFT_NODE_IP, on a bridge inside the
# namespace, as the kubelet refuses a loopback node IP), pods get addresses on a CNI bridge, and
# nothing can reach any other network. From the host, one forwarder (hack/nsproxy.py) makes the
# API server reachable on https://127.0.0.1:$API_PORT, so plain `kubectl` works.
# Ports from $KUBEFT_PORT_BASE (default 16440), inside the namespace: etcd +0 (peer +1),
# kube-apiserver +3 (16443, also the host's forwarder), controller-manager +4, scheduler +5; the
# cluster DNS serves port 53 on the node's address, the pods' only name server.
# State lives in $KUBEFT_CLUSTER_DIR: pki/, etcd/, node/ (containerd's state, the kubelet's root,
# pod logs), logs/<component>.log, run/<component>.pid and admin.kubeconfig. Images live in
# containerd's store under $KUBEFT_CACHE/containerd-1.6, kept across `down` like any other cache.
# docs/local-cluster.md describes the node and what it needs (root, cgroups, overlayfs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=hack/lib/daemon.sh
. "$root/hack/lib/daemon.sh"
CACHE="${KUBEFT_CACHE:-$HOME/.cache/kubeft}"
K8S_VERSION="${K8S_VERSION:-1.35.4}"
VENV="${VENV:-$CACHE/venv-py3.11}"
DIR="${KUBEFT_CLUSTER_DIR:-$CACHE/cluster}"
K8S_BIN="$CACHE/k8s-v$K8S_VERSION/bin"
TOOLS_BIN="$CACHE/bin"
BASE="${KUBEFT_PORT_BASE:-16440}"
ETCD_PORT=$((BASE + 0)) ETCD_PEER_PORT=$((BASE + 1)) API_PORT=$((BASE + 3))
CM_PORT=$((BASE + 4)) SCHED_PORT=$((BASE + 5)) KUBELET_PORT=10250
NETNS="${KUBEFT_NETNS:-kubeft}"
NETNS_PATH="/run/netns/$NETNS"
NODE_IP="${KUBEFT_NODE_IP:-10.250.0.1}"
NODE_NAME="${KUBEFT_NODE_NAME:-kubeft-node-0}"
POD_CIDR="${KUBEFT_POD_CIDR:-10.244.0.0/24}"
# The node has no GPU; it advertises this many nvidia.com/gpu (on its status, as GPU scheduler
# tests do) so that GPU-requesting pods schedule, and they run on the CPU.
NODE_GPUS="${KUBEFT_NODE_GPUS:-2}"
CRICTL_VERSION="${CRICTL_VERSION:-1.34.0}"
CONTAINERD_ROOT="$CACHE/containerd-1.6"
NODE_DIR="$DIR/node"
SOCK="$NODE_DIR/containerd.sock"
TIMEOUT="${KUBEFT_CLUSTER_TIMEOUT:-120}"
# KUBEFT_WITH_NODE=0: the control plane alone (no containerd, no kubelet), e.g. for the operator
# scale benchmark, whose pods only need to exist; give such a cluster its own KUBEFT_NETNS.
WITH_NODE="${KUBEFT_WITH_NODE:-1}"
COMPONENTS=(etcd kube-apiserver nsproxy kube-controller-manager kube-scheduler)
# Only pods need the cluster DNS, so a cluster without a node runs none.
[ "$WITH_NODE" = 1 ] && COMPONENTS+=(coredns containerd kubelet)
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SERVICE_IP=10.96.0.1
ISSUER=https://kubernetes.default.svc.cluster.local
export PATH="$VENV/bin:$TOOLS_BIN:$K8S_BIN:$CACHE/crictl-v$CRICTL_VERSION/bin:$PATH"

log() { echo ">> $*" >&2; }
die() { echo "cluster.sh: $*" >&2; exit 1; }
kc() { kubectl --kubeconfig "$DIR/admin.kubeconfig" --request-timeout=5s "$@"; }
NS_EXEC=(nsenter --net="$NETNS_PATH" --)
in_ns() { "${NS_EXEC[@]}" "$@"; }
crictl_() { crictl --runtime-endpoint "unix://$SOCK" --image-endpoint "unix://$SOCK" --timeout 10s "$@"; }
pid_of() { cat "$DIR/run/$1.pid" 2>/dev/null || true; }
# Alive and still the process we started (hack/lib/daemon.sh).
alive() { daemon_alive "$(pid_of "$1")" "$1"; }

s3_sh() { # hack/s3.sh with this cluster's state directory, namespace and node address
  KUBEFT_CLUSTER_DIR="$DIR" KUBEFT_NETNS="$NETNS" KUBEFT_NODE_IP="$NODE_IP" "$root/hack/s3.sh" "$@"
}

dns_sh() { # hack/dns.sh with this cluster's state directory, namespace and node address
  KUBEFT_CLUSTER_DIR="$DIR" KUBEFT_NETNS="$NETNS" KUBEFT_NODE_IP="$NODE_IP" "$root/hack/dns.sh" "$@"
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
    "$server\nsubjectAltName=IP:127.0.0.1,IP:$KUBERNETES_SERVICE_IP,IP:$NODE_IP,$names,DNS:kubernetes.default.svc.cluster.local"
  cert kubelet-serving "/CN=$NODE_NAME" "$server\nsubjectAltName=IP:$NODE_IP,DNS:$NODE_NAME"
  cert admin "/O=system:masters/CN=kubernetes-admin" "$client"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
  cert kube-controller-manager "/CN=system:kube-controller-manager" "$client"
  cert kube-scheduler "/CN=system:kube-scheduler" "$client"
  # The kubelet's identity: the Node authorizer lets system:node:NAME touch only its own objects.
  cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "$client"
  # The cluster DNS's identity: hack/dns/rbac.yaml lets it list and watch what it answers from.
  cert coredns "/CN=kubeft:coredns" "$client"
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
  taken=$(ss -Hltn 2>/dev/null | awk '{print $4}' | grep -E ":$API_PORT\$" || true)
  [ -z "$taken" ] || echo "---- the API port is already taken on the host (another cluster? set KUBEFT_PORT_BASE): $taken" >&2
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

etcd_healthy() { in_ns curl -fsS "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }
readyz() { [ "$(kc get --raw /readyz 2>/dev/null)" = ok ]; }
node_ready() {
  [ "$(kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}
node_registered() { kc get node "$NODE_NAME" >/dev/null 2>&1; }
node_has_gpus() {
  [ "$(kc get node "$NODE_NAME" -o jsonpath='{.status.allocatable.nvidia\.com/gpu}' 2>/dev/null)" = "$NODE_GPUS" ]
}
containerd_up() { [ -S "$SOCK" ] && ctr --address "$SOCK" version >/dev/null 2>&1; }

# ---- the network namespace: the cluster's own host -------------------------------------------
netns_up() {
  [ -e "$NETNS_PATH" ] || ip netns add "$NETNS"
  in_ns ip link set lo up
  if ! in_ns ip link show kubeft0 >/dev/null 2>&1; then
    in_ns ip link add kubeft0 type bridge
    in_ns ip addr add "$NODE_IP/24" dev kubeft0
    in_ns ip link set kubeft0 up
  fi
  # No kube-proxy: the `kubernetes` Service's ClusterIP is translated to the API server here, for
  # pods (PREROUTING) and for the node's own processes and hostNetwork pods (OUTPUT).
  local chain rule
  for chain in PREROUTING OUTPUT; do
    rule=(-d "$KUBERNETES_SERVICE_IP/32" -p tcp --dport 443 -j DNAT --to-destination "$NODE_IP:$API_PORT")
    in_ns iptables -t nat -C "$chain" "${rule[@]}" 2>/dev/null || in_ns iptables -t nat -A "$chain" "${rule[@]}"
  done
}

node_config() {
  mkdir -p "$NODE_DIR"/{cni,cni-ipam,kubelet,pod-logs} "$CONTAINERD_ROOT"
  cat >"$NODE_DIR/containerd.toml" <<EOF
version = 2
root = "$CONTAINERD_ROOT"
state = "$NODE_DIR/containerd-state"
[grpc]
  address = "$SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/kubeft/pause:3.10"
  # Root here lacks CAP_SYS_RESOURCE; the kubelet's -998 for sandboxes would fail otherwise.
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_DIR/cni"
EOF
  cat >"$NODE_DIR/cni/10-kubeft.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "kubeft", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$NODE_DIR/cni-ipam",
            "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}}]}
EOF
  # The node's own resolv.conf, which pods with dnsPolicy Default (and hostNetwork pods) get: no
  # name server, as nothing outside the namespace is reachable and no lookup should try. Pods with
  # the default dnsPolicy ClusterFirst get the cluster DNS instead (clusterDNS below).
  echo "options ndots:1" >"$NODE_DIR/resolv.conf"
  cat >"$NODE_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $DIR/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $DIR/pki/kubelet-serving.crt
tlsPrivateKeyFile: $DIR/pki/kubelet-serving.key
containerRuntimeEndpoint: unix://$SOCK
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
resolvConf: $NODE_DIR/resolv.conf
clusterDNS: [$NODE_IP]
clusterDomain: cluster.local
podLogsDir: $NODE_DIR/pod-logs
volumePluginDir: $NODE_DIR/volume-plugins
serializeImagePulls: false
# A developer's disk fills up: evict late, and never garbage-collect the locally built images.
evictionHard: {memory.available: 100Mi, nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
EOF
}

up() {
  for b in "$K8S_BIN/kube-apiserver" "$K8S_BIN/kube-controller-manager" "$K8S_BIN/kube-scheduler" \
    "$TOOLS_BIN/etcd" "$TOOLS_BIN/kubectl" "$VENV/bin/python"; do
    [ -x "$b" ] || die "$b is missing: run 'make setup' first"
  done
  [ "$(id -u)" = 0 ] || die "the local node needs root (network namespace, containerd, kubelet). Without root, \
use an existing cluster (kind, minikube) through KUBECONFIG: docs/local-cluster.md, 'Without root'."
  if [ "$WITH_NODE" = 1 ]; then
    for b in "$K8S_BIN/kubelet" "$(command -v containerd)" "$(command -v crictl)"; do
      [ -x "$b" ] || die "${b:-containerd or crictl} is missing: run 'make setup' first"
    done
  fi
  if healthy; then
    log "cluster already up: KUBECONFIG=$DIR/admin.kubeconfig"
    return 0
  fi
  # Whatever is still running is kept (its pods too); what crashed or was never started starts now.
  mkdir -p "$DIR"/{logs,run} && chmod 700 "$DIR"
  make_pki
  for u in admin kube-controller-manager kube-scheduler kubelet coredns; do kubeconfig "$DIR/pki/$u.kubeconfig" "$u"; done
  kubeconfig "$DIR/admin.kubeconfig" admin

  netns_up
  start etcd "${NS_EXEC[@]}" etcd --name kubeft --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "kubeft=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --auto-compaction-mode=periodic --auto-compaction-retention=10m \
    --quota-backend-bytes=2147483648 --log-level=warn
  wait_for "etcd" etcd_healthy

  start kube-apiserver "${NS_EXEC[@]}" kube-apiserver \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=0.0.0.0 --advertise-address="$NODE_IP" --secure-port="$API_PORT" \
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
  start nsproxy "$VENV/bin/python" "$root/hack/nsproxy.py" \
    --listen "127.0.0.1:$API_PORT" --netns "$NETNS_PATH" --connect "127.0.0.1:$API_PORT"
  # The controllers exit when their RBAC roles are not bootstrapped yet, so they wait for /readyz.
  wait_for "kube-apiserver /readyz" readyz

  local k="$DIR/pki/kube-controller-manager.kubeconfig"
  start kube-controller-manager "${NS_EXEC[@]}" kube-controller-manager \
    --kubeconfig="$k" --authentication-kubeconfig="$k" --authorization-kubeconfig="$k" \
    --bind-address=127.0.0.1 --secure-port="$CM_PORT" --leader-elect=false \
    --controllers='*' --use-service-account-credentials=true \
    --root-ca-file="$DIR/pki/ca.crt" --service-account-private-key-file="$DIR/pki/sa.key" \
    --cluster-signing-cert-file="$DIR/pki/ca.crt" --cluster-signing-key-file="$DIR/pki/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --profiling=false --v=1

  k="$DIR/pki/kube-scheduler.kubeconfig"
  start kube-scheduler "${NS_EXEC[@]}" kube-scheduler \
    --kubeconfig="$k" --authentication-kubeconfig="$k" --authorization-kubeconfig="$k" \
    --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --leader-elect=false --profiling=false --v=1

  if [ "$WITH_NODE" = 1 ]; then
    # The cluster DNS, before the kubelet runs any pod that may look a name up.
    dns_sh up
    node_config
    start containerd "${NS_EXEC[@]}" containerd --config "$NODE_DIR/containerd.toml"
    wait_for "containerd" containerd_up
    KUBEFT_CONTAINERD_SOCK="$SOCK" "$root/hack/images.sh" load || die "loading the images into containerd failed; run 'make images'"
    start kubelet "${NS_EXEC[@]}" kubelet --config "$NODE_DIR/kubelet.yaml" --kubeconfig "$DIR/pki/kubelet.kubeconfig" \
      --root-dir "$NODE_DIR/kubelet" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" \
      --node-labels "kubeft.io/local-node=true,nvidia.com/gpu.count=$NODE_GPUS" --v=1
    wait_for "the node to register" node_registered
    # Extended resources are advertised on the Node's status; the kubelet keeps what it does not manage.
    local gpus="{\"status\":{\"capacity\":{\"nvidia.com/gpu\":\"$NODE_GPUS\"}}}"
    kc patch node "$NODE_NAME" --subresource=status --type=merge -p "$gpus" >/dev/null
    wait_for "the node's nvidia.com/gpu" node_has_gpus
    wait_for "the node to be Ready" node_ready
    # The object store (SeaweedFS) on the node's address, where pods and the tests reach it.
    s3_sh up
  fi
  wait_for "the default ServiceAccount" kc get serviceaccount default -n default
  wait_for "the kube-root-ca.crt ConfigMap" kc get configmap kube-root-ca.crt -n default
  log "cluster up (node $NODE_NAME at $NODE_IP in netns $NETNS): export KUBECONFIG=$DIR/admin.kubeconfig"
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

stop_node() {
  # Pods first, through the CRI, so that the CNI plugin releases their addresses and veths; then
  # the kubelet (so it restarts none), containerd, and the shims, which outlive containerd.
  if containerd_up; then
    terminate kubelet
    crictl_ rmp --all --force >/dev/null 2>&1 || true
  fi
  terminate kubelet containerd
  # The [c] keeps pkill's own command line from matching, which it otherwise does where /proc
  # belongs to another pid namespace than ours (pkill then cannot tell itself apart).
  pkill -KILL -f "[c]ontainerd-shim-runc-v2 .*-address $SOCK" 2>/dev/null || true
  # Whatever the kubelet and containerd left mounted (volumes, container root filesystems).
  local m
  for m in $(findmnt -rn -o TARGET | grep -F "$DIR/" | sort -r); do umount -l "$m" 2>/dev/null || true; done
  # The kubelet's pod cgroups (cgroupfs driver): children before parents, in every hierarchy.
  local d
  for d in /sys/fs/cgroup/*/kubepods; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  # The kubelet's per-container log links point into $DIR; containerd's runtime dirs keep nothing.
  find /var/log/containers -maxdepth 1 -type l -lname "$NODE_DIR/*" -delete 2>/dev/null || true
  # Paths the kubelet creates whatever its root dir: removed when nothing else left anything there.
  rm -f /var/lib/kubelet/device-plugins/kubelet.sock
  rmdir /var/lib/kubelet/device-plugins /var/lib/kubelet /var/log/containers 2>/dev/null || true
}

stop_components() {
  # Kueue (hack/kueue.sh, started by the tests that need it) first, while its API server still answers.
  [ -f "$DIR/run/kueue.pid" ] && KUBEFT_CLUSTER_DIR="$DIR" "$root/hack/kueue.sh" down || true
  { [ -f "$DIR/run/s3.pid" ] || [ -f "$DIR/run/s3-forward.pid" ]; } && s3_sh down || true
  stop_node
  # The cluster DNS after the pods that asked it, while the API server it watches still answers.
  [ -f "$DIR/run/coredns.pid" ] && dns_sh down || true
  # etcd goes last: the API server's graceful shutdown stalls without it.
  terminate kube-scheduler kube-controller-manager nsproxy kube-apiserver
  terminate etcd
  # Add-ons started beside the cluster (make demo's S3 server) leave pid files here too.
  local f p
  for f in "$DIR"/run/*.pid; do
    [ -f "$f" ] || continue
    p=$(cat "$f")
    kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
    rm -f "$f"
  done
  # The namespace goes with everything in it: the node's address, the pod bridge, the NAT rules.
  [ -e "$NETNS_PATH" ] && ip netns del "$NETNS" 2>/dev/null || true
}

down() {
  [ -d "$DIR" ] || [ -e "$NETNS_PATH" ] || { log "no cluster in $DIR"; return 0; }
  log "stopping the cluster in $DIR"
  stop_components
  rm -rf "$DIR"
}

leftovers() { # what `down` must not leave behind; prints each, fails if there is any
  local found=0 line
  while read -r line; do [ -n "$line" ] && { echo "left behind: $line"; found=1; }; done < <(
    [ -e "$NETNS_PATH" ] && echo "network namespace $NETNS_PATH"
    pgrep -af "[c]ontainerd-shim-runc-v2 .*-address $SOCK|[k]ubelet --config $NODE_DIR/|[c]ontainerd --config $NODE_DIR/|[k]ueue --config $DIR/|[w]eed .*-dir=$DIR/|[c]oredns -conf $DIR/" \
      | sed 's/^/process /'
    findmnt -rn -o TARGET | grep -F "$DIR/" | sed 's/^/mount /'
    for d in /sys/fs/cgroup/*/kubepods; do [ -d "$d" ] && echo "cgroup $d"; done
    find /var/log/containers -maxdepth 1 -type l -lname "$NODE_DIR/*" 2>/dev/null | sed 's/^/log link /'
    [ -d "$DIR" ] && echo "state directory $DIR"
  )
  return $found
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
  exec) shift; [ $# -gt 0 ] || die "usage: $0 exec COMMAND [ARG ...]"; exec "${NS_EXEC[@]}" "$@" ;;
  down) lock; down ;;
  status) status ;;
  leftovers) leftovers ;;
  *) echo "usage: $0 up|down|status|leftovers|exec COMMAND" >&2; exit 2 ;;
esac
