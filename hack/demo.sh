#!/usr/bin/env bash
# `make demo`: the README's first command. On a bare machine it installs everything, starts the
# local control plane and a local S3 server, installs kubeft (CRDs + Helm chart), runs the operator
# with the chart's ServiceAccount, and trains examples/00-demo-tiny-lora.yaml end to end on CPU.
# It leaves the cluster, S3 and the operator running so you can look around; `make cluster-down`
# stops all of them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
DIR="${KUBEFT_CLUSTER_DIR:-$HOME/.cache/kubeft/cluster}"
S3_PORT="${KUBEFT_DEMO_S3_PORT:-19000}"
S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
NS=kubeft-demo
SYSTEM_NS=kubeft-system
start=$(date +%s)
step() { printf '\n\033[1m==> %s\033[0m (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo-secret AWS_DEFAULT_REGION=us-east-1

step "1/7 installing (cached after the first run)"
hack/install.sh

step "2/7 starting the local control plane and an S3 server on $S3_ENDPOINT"
hack/cluster.sh up
mkdir -p "$DIR/run" "$DIR/logs" "$DIR/demo"
if ! curl -sf "$S3_ENDPOINT/" >/dev/null 2>&1; then
  python hack/spawn.py --log "$DIR/logs/demo-s3.log" --pidfile "$DIR/run/demo-s3.pid" -- \
    moto_server -H 127.0.0.1 -p "$S3_PORT"
  for _ in $(seq 1 50); do curl -sf "$S3_ENDPOINT/" >/dev/null 2>&1 && break; sleep 0.2; done
fi

step "3/7 installing the CRD and the Helm chart, then the operator as the chart's ServiceAccount"
kubectl apply --server-side --force-conflicts -f crds/finetunejob.yaml >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/finetunejobs.kubeft.io >/dev/null
# The chart's Deployment would run the operator image; there is no container runtime here, so the
# chart installs with 0 replicas and the same operator runs as a local process with its token.
helm upgrade --install kubeft charts/kubeft -n "$SYSTEM_NS" --create-namespace --skip-crds \
  --set operator.replicas=0 --wait=false >/dev/null
sa=$(kubectl get serviceaccount -n "$SYSTEM_NS" -l app.kubernetes.io/instance=kubeft -o jsonpath='{.items[0].metadata.name}')
token=$(kubectl create token "$sa" -n "$SYSTEM_NS" --duration=12h)
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$DIR/demo/ca.crt"
KUBECONFIG="$DIR/demo/operator.kubeconfig" kubectl config set-cluster local --server="$server" \
  --certificate-authority="$DIR/demo/ca.crt" --embed-certs >/dev/null
KUBECONFIG="$DIR/demo/operator.kubeconfig" kubectl config set-credentials operator --token="$token" >/dev/null
KUBECONFIG="$DIR/demo/operator.kubeconfig" kubectl config set-context operator --cluster=local --user=operator >/dev/null
KUBECONFIG="$DIR/demo/operator.kubeconfig" kubectl config use-context operator >/dev/null
if [ -f "$DIR/run/demo-operator.pid" ] && kill -0 "$(cat "$DIR/run/demo-operator.pid")" 2>/dev/null; then
  kill -TERM -- "-$(cat "$DIR/run/demo-operator.pid")" 2>/dev/null || true
  sleep 1
fi
# The demo's S3 server is on loopback, which the operator refuses unless allowed (SSRF guard).
: >"$DIR/logs/demo-operator.log"
KUBECONFIG="$DIR/demo/operator.kubeconfig" KUBEFT_METRICS_PORT=0 KUBEFT_ALLOW_PRIVATE_ENDPOINTS=true \
  python hack/spawn.py --log "$DIR/logs/demo-operator.log" --pidfile "$DIR/run/demo-operator.pid" -- \
  python -m kubeft_operator --standalone --namespace="$NS"
echo "operator log: $DIR/logs/demo-operator.log"

step "4/7 building a tiny Llama-style model and uploading it with the bundled dataset to S3"
python - "$S3_ENDPOINT" "$DIR/demo" <<'EOF'
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
      echo "trainer logs: $DIR/pods/${NS}_demo-train-*/trainer.log"
      exit 1 ;;
  esac
  if [ "$(date +%s)" -gt "$deadline" ]; then echo "timed out; operator log: $DIR/logs/demo-operator.log"; exit 1; fi
  sleep 1
done

step "7/7 done in $(( $(date +%s) - start ))s"
artifact=$(kubectl get ftj demo -n "$NS" -o jsonpath='{.status.artifact.uri}')
tb=$(kubectl get ftj demo -n "$NS" -o jsonpath='{.status.tensorboardUri}')
python - "$S3_ENDPOINT" "$artifact" "$tb" <<'EOF'
import sys
import boto3
endpoint, artifact, tb = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint)
def listing(uri):
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/")
    return [o for page in pages for o in page.get("Contents", [])]
print(f"adapter:     {artifact}")
for o in listing(artifact):
    if "/checkpoints/" not in o["Key"] and "/tensorboard/" not in o["Key"]:
        print(f"  {o['Size']:>10,}  s3://{artifact.removeprefix('s3://').split('/')[0]}/{o['Key']}")
print(f"tensorboard: {tb}  ({sum(1 for o in listing(tb) if 'tfevents' in o['Key'])} event files)")
EOF
kubectl get ftj demo -n "$NS" -o jsonpath='{"metrics: "}{.status.metrics}{"\n"}'
cat <<EOF

Open TensorBoard on the live log in object storage:
  S3_ENDPOINT=$S3_ENDPOINT AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo-secret \\
    $(command -v tensorboard) --logdir $tb

The cluster, S3 and the operator keep running: KUBECONFIG=$DIR/admin.kubeconfig kubectl get ftj -A
Stop everything with: make cluster-down
EOF
