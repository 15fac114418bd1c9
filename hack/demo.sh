#!/usr/bin/env bash
# `make demo`: the README's first command. On a bare machine it installs everything, builds the
# images, starts the local cluster with its real node and a local S3 server, installs kubeft from
# its Helm chart (the operator runs as the chart's Deployment, from the locally built image), and
# trains examples/00-demo-tiny-lora.yaml end to end on CPU, in a pod of the trainer image.
# It leaves the cluster and S3 running so you can look around; `make cluster-down` stops them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
DIR="${KUBEFT_CLUSTER_DIR:-$HOME/.cache/kubeft/cluster}"
NODE_IP="${KUBEFT_NODE_IP:-10.250.0.1}"
# The object store (SeaweedFS, hack/s3.sh) runs on the node's address inside the cluster's network
# namespace, where the trainer pod reaches it (the example's storage.endpoint); `hack/cluster.sh up`
# starts it. The host reaches the same port on 127.0.0.1.
S3_PORT=19000
S3_ENDPOINT="http://$NODE_IP:$S3_PORT"
NS=kubeft-demo
SYSTEM_NS=kubeft-system
start=$(date +%s)
step() { printf '\n\033[1m==> %s\033[0m (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }
ns() { hack/cluster.sh exec "$@"; }  # run inside the cluster's network namespace
# The store's read-write identity (hack/s3/identities.json): local keys, never reuse them.
export AWS_ACCESS_KEY_ID=kubeft-local AWS_SECRET_ACCESS_KEY=kubeft-local-secret AWS_DEFAULT_REGION=us-east-1
if [ "$(id -u)" != 0 ]; then
  cat >&2 <<'EOF'
make demo needs root: the local cluster's node runs containerd, runc and a kubelet in a network
namespace of its own. Without root, run kubeft on an existing cluster (kind, minikube, a real one):
  make images, load them into that cluster (e.g. `kind load image-archive`), then
  helm install kubeft charts/kubeft -n kubeft-system --create-namespace
docs/local-cluster.md, "Without root", has the steps.
EOF
  exit 1
fi

step "1/7 installing and building the images (cached after the first run)"
hack/install.sh
hack/images.sh build

step "2/7 starting the local cluster (real node) and its S3 store (SeaweedFS) on $S3_ENDPOINT"
hack/cluster.sh up
hack/s3.sh up
mkdir -p "$DIR/demo"

step "3/7 helm install kubeft: the CRD, and the operator as a Deployment of the locally built image"
kubectl apply --server-side --force-conflicts -f crds/finetunejob.yaml >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/finetunejobs.kubeft.io >/dev/null
# The demo's S3 server is on a private address, which the operator refuses unless allowed (SSRF
# guard); nothing may reach the Hugging Face Hub from the trainer here.
# The image's ID as a pod annotation: a rebuilt operator image (same tag) rolls the Deployment.
# The local node's nvidia.com/gpu is a fake (no real GPU): KUBEFT_ALLOW_CPU_FALLBACK lets the trainer's
# start-up GPU check pass the demo's `gpus: 1` job on to the CPU, with a warning in its log.
helm upgrade --install kubeft charts/kubeft -n "$SYSTEM_NS" --create-namespace --skip-crds \
  --set operator.allowPrivateEndpoints=true --set-string trainer.env.HF_HUB_OFFLINE=1 --set-json trainer.progressIntervalSeconds=5 \
  --set-string trainer.env.KUBEFT_ALLOW_CPU_FALLBACK=1 \
  --set-string "operator.podAnnotations.kubeft\.io/image-id=$(hack/images.sh id operator | cut -c1-12)" >/dev/null
kubectl rollout status deployment -n "$SYSTEM_NS" -l app.kubernetes.io/instance=kubeft --timeout=180s
step "4/7 building a tiny Llama-style model and uploading it with the bundled dataset to S3"
ns python - "$S3_ENDPOINT" "$DIR/demo" <<'EOF'
import pathlib, sys
import boto3
sys.path.insert(0, ".")
from hack import tiny_models

endpoint, work = sys.argv[1], pathlib.Path(sys.argv[2])
s3 = boto3.client("s3", endpoint_url=endpoint)
try:
    s3.create_bucket(Bucket="kubeft-demo")
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
model = tiny_models.build_causal_lm(work / "tiny-llama")
for path in sorted(p for p in model.rglob("*") if p.is_file()):
    s3.upload_file(str(path), "kubeft-demo", f"models/tiny-llama/{path.relative_to(model)}")
s3.upload_file("examples/data/chat.jsonl", "kubeft-demo", "data/chat.jsonl")
print(f"model: s3://kubeft-demo/models/tiny-llama ({sum(p.stat().st_size for p in model.rglob('*') if p.is_file()) // 1024} KiB)")
print("data:  s3://kubeft-demo/data/chat.jsonl")
EOF

step "5/7 creating the namespace and the S3 credentials Secret"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl create secret generic demo-s3-credentials -n "$NS" \
  --from-literal=AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" --from-literal=AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null

step "6/7 kubectl apply -f examples/00-demo-tiny-lora.yaml, then watching it"
# The spec is immutable once created: a re-run replaces the previous demo job.
kubectl delete finetunejob demo -n "$NS" --ignore-not-found --wait=true >/dev/null
kubectl apply -n "$NS" -f examples/00-demo-tiny-lora.yaml
kubectl get ftj demo -n "$NS" | sed -n 1p
last=""
deadline=$(( $(date +%s) + ${KUBEFT_DEMO_TIMEOUT:-900} ))
while :; do
  # print a line whenever phase, progress or loss change (not the AGE column)
  line=$(kubectl get ftj demo -n "$NS" --no-headers 2>/dev/null || true)
  key=$(awk '{NF--; print}' <<<"$line")
  [ "$key" != "$last" ] && { echo "$line"; last=$key; }
  phase=$(kubectl get ftj demo -n "$NS" -o jsonpath='{.status.phase}' 2>/dev/null || true)
  case "$phase" in
    Succeeded) break ;;
    Failed)
      echo; kubectl get ftj demo -n "$NS" -o jsonpath='{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}'
      kubectl logs -n "$NS" job/demo-train --tail=30 || true
      exit 1 ;;
  esac
  if [ "$(date +%s)" -gt "$deadline" ]; then
    echo "timed out; the operator's log:"; kubectl logs -n "$SYSTEM_NS" deployment/kubeft-operator --tail=30 || true
    exit 1
  fi
  sleep 1
done

step "7/7 done in $(( $(date +%s) - start ))s"
echo "The pods, on the node, from the locally built images:"
kubectl get pods -n "$SYSTEM_NS" -o wide
kubectl get pods -n "$NS" -o wide
kubectl get pods -A --field-selector=metadata.namespace!=kube-system \
  -o custom-columns='NAMESPACE:.metadata.namespace,POD:.metadata.name,IMAGE:.spec.containers[0].image,IMAGE ID:.status.containerStatuses[0].imageID' \
  | grep -E "^(NAMESPACE|$SYSTEM_NS|$NS) "
echo; echo "kubectl logs -n $NS job/demo-train --tail=5:"
kubectl logs -n "$NS" job/demo-train --tail=5
echo
artifact=$(kubectl get ftj demo -n "$NS" -o jsonpath='{.status.artifact.uri}')
tb=$(kubectl get ftj demo -n "$NS" -o jsonpath='{.status.tensorboardUri}')
ns python - "$S3_ENDPOINT" "$artifact" "$tb" <<'EOF'
import sys
import boto3
endpoint, artifact, tb = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint)
def listing(uri):
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/")
    return [o for page in pages for o in page.get("Contents", [])]
print(f"adapter:     {artifact}")
for o in listing(artifact):  # the output prefix holds the adapter alone
    print(f"  {o['Size']:>10,}  s3://{artifact.removeprefix('s3://').split('/')[0]}/{o['Key']}")
print(f"tensorboard: {tb}  ({sum(1 for o in listing(tb) if 'tfevents' in o['Key'])} event files)")
EOF
kubectl get ftj demo -n "$NS" -o jsonpath='{"metrics: "}{.status.metrics}{"\n"}'
cat <<EOF

The object store answers on this machine too (SeaweedFS $S3_ENDPOINT, forwarded to 127.0.0.1:$S3_PORT):
  eval "\$(hack/s3.sh env)"      # AWS_ENDPOINT_URL, S3_ENDPOINT and the read-write keys
  aws s3 ls --recursive ${artifact%/}/      # any S3 client; aws-cli is not installed by kubeft
  $(command -v tensorboard) --logdir $tb

The cluster, S3 and the operator keep running: KUBECONFIG=$DIR/admin.kubeconfig kubectl get ftj -A
Trainer log: KUBECONFIG=$DIR/admin.kubeconfig kubectl logs -n $NS job/demo-train
Stop everything with: make cluster-down
EOF
