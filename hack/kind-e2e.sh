#!/usr/bin/env bash
# End-to-end on a kind cluster with real pods (the renderer on CPU):
#   kind cluster -> both images built and loaded -> MLflow + S3 (examples/dev-mlflow-s3.yaml)
#   -> operator via Helm -> a model trained and registered with alias "production"
#   -> a TryOnModel -> phase Healthy -> a real try-on request through the Service.
# Cleans up on exit unless KEEP_CLUSTER=1.
#
# Needs: docker, kind, kubectl, helm, curl, and a Python with this project installed with the
# renderer extra (for `tryon-model`): PYTHON=.venv/bin/python by default.
#
#   hack/kind-e2e.sh
#   KEEP_CLUSTER=1 hack/kind-e2e.sh      # leave everything running afterwards
#
# Settings (environment): KIND_CLUSTER_NAME, IMAGE_TAG, TORCH_INDEX_URL (CPU torch for the
# renderer image), E2E_NAMESPACE, OPERATOR_NAMESPACE, PYTHON, HEALTHY_TIMEOUT.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

cluster="${KIND_CLUSTER_NAME:-tryon-e2e}"
commit="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
tag="${IMAGE_TAG:-e2e-${commit:0:12}}"
torch_index="${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}"
ns="${E2E_NAMESPACE:-shop}"
operator_ns="${OPERATOR_NAMESPACE:-tryon-system}"
python="${PYTHON:-$root/.venv/bin/python}"
healthy_timeout="${HEALTHY_TIMEOUT:-900s}"
model_name="tryon-vton"
started=$SECONDS

workdir="$(mktemp -d)"
pf_pids=()

log() { printf '[%s +%4ss] %s\n' "$(date -u +%H:%M:%S)" "$((SECONDS - started))" "$*"; }
die() { log "FAILED: $*" >&2; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is required (see the header of $0)"
}

dump_state() {
  log "cluster state for debugging:"
  kubectl get tryonmodels,deployments,pods,services -A -o wide || true
  kubectl -n "$ns" describe tryonmodel dress || true
  kubectl -n "$operator_ns" logs deployment/tryon-operator --tail=200 || true
  kubectl -n "$ns" logs -l app.kubernetes.io/name=tryon-renderer --tail=100 --prefix || true
}

cleanup() {
  local rc=$?
  for pid in "${pf_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if ((rc != 0)); then dump_state; fi
  if [[ "${KEEP_CLUSTER:-0}" == 1 ]]; then
    log "KEEP_CLUSTER=1: cluster '$cluster' left running (kind delete cluster --name $cluster)"
  else
    kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
  fi
  rm -rf "$workdir"
  exit "$rc"
}
trap cleanup EXIT

# port_forward VAR TARGET NAMESPACE REMOTE_PORT: forwards a free 127.0.0.1 port to TARGET and
# stores that port in VAR (no subshell, so the forwarder's pid is remembered for cleanup).
port_forward() {
  local var="$1" target="$2" namespace="$3" remote="$4" local_port
  local_port="$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  kubectl -n "$namespace" port-forward --address 127.0.0.1 "$target" "$local_port:$remote" \
    >"$workdir/pf-${local_port}.log" 2>&1 &
  pf_pids+=("$!")
  for _ in $(seq 1 100); do
    if (echo >"/dev/tcp/127.0.0.1/$local_port") 2>/dev/null; then
      printf -v "$var" '%s' "$local_port"
      return 0
    fi
    sleep 0.2
  done
  die "port-forward to $namespace/$target did not open"
}

for tool in docker kind kubectl helm curl; do need "$tool"; done
[[ -x "$python" ]] || die "PYTHON=$python is not an executable Python with the project installed"
"$python" -c 'import tryon_model, tryon_renderer' 2>/dev/null \
  || die "$python lacks the project; pip install -e '.[renderer]' into it first"

log "creating kind cluster $cluster"
kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
kind create cluster --name "$cluster" --wait 180s
kubectl config use-context "kind-$cluster" >/dev/null

log "building images (tag $tag)"
docker build --target operator -t "tryon-operator:$tag" \
  --build-arg VERSION="$tag" --build-arg COMMIT="$commit" .
docker build --target renderer -t "tryon-renderer:$tag" \
  --build-arg VERSION="$tag" --build-arg COMMIT="$commit" \
  --build-arg TORCH_INDEX_URL="$torch_index" .
kind load docker-image --name "$cluster" "tryon-operator:$tag" "tryon-renderer:$tag"

log "deploying MLflow and S3 (examples/dev-mlflow-s3.yaml)"
kubectl apply -f examples/dev-mlflow-s3.yaml
kubectl -n mlflow rollout status deployment/seaweedfs --timeout=300s
kubectl -n mlflow wait --for=condition=complete job/create-mlflow-bucket --timeout=300s
kubectl -n mlflow rollout status deployment/mlflow --timeout=300s

log "installing the operator chart"
helm upgrade --install tryon-operator charts/tryon-operator \
  --namespace "$operator_ns" --create-namespace \
  --set image.repository=tryon-operator --set image.tag="$tag" --set image.pullPolicy=Never \
  --set operator.resyncSeconds=5 --set mlflow.pollSeconds=5 \
  --wait --timeout 300s

log "training and registering a model (CPU), alias production"
access_key="$(kubectl -n mlflow get secret s3-credentials -o jsonpath='{.data.AWS_ACCESS_KEY_ID}' | base64 -d)"
secret_key="$(kubectl -n mlflow get secret s3-credentials -o jsonpath='{.data.AWS_SECRET_ACCESS_KEY}' | base64 -d)"
mlflow_port=""
port_forward mlflow_port service/mlflow mlflow 5000
s3_port=""
port_forward s3_port service/seaweedfs mlflow 8333
(
  export MLFLOW_TRACKING_URI="http://127.0.0.1:$mlflow_port"
  export MLFLOW_S3_ENDPOINT_URL="http://127.0.0.1:$s3_port"
  export AWS_ACCESS_KEY_ID="$access_key" AWS_SECRET_ACCESS_KEY="$secret_key"
  export AWS_DEFAULT_REGION=us-east-1
  "$python" -m tryon_model.cli data make "$workdir/data" --count 48 --seed 1
  "$python" -m tryon_model.cli train --data "$workdir/data" --model "$model_name" \
    --epochs 2 --device cpu --json
  "$python" -m tryon_model.cli promote --data "$workdir/data" --model "$model_name" \
    --version latest --device cpu --force --reason "kind e2e"
)

log "deploying TryOnModel $ns/dress"
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f -
# The renderer reads model artifacts from S3 itself: it gets the same credentials, by reference.
kubectl -n "$ns" create secret generic s3-credentials \
  --from-literal=AWS_ACCESS_KEY_ID="$access_key" \
  --from-literal=AWS_SECRET_ACCESS_KEY="$secret_key" \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f - <<EOF
apiVersion: tryon.dev/v1alpha1
kind: TryOnModel
metadata:
  name: dress
  namespace: $ns
spec:
  model:
    registeredModel: $model_name
    alias: production
  mlflow:
    trackingUri: http://mlflow.mlflow:5000
  renderer:
    image: tryon-renderer:$tag
    imagePullPolicy: Never
    replicas: 1
    resources:
      requests: {cpu: 250m, memory: 1Gi}
      limits: {memory: 3Gi}
    env:
      - {name: TRYON_DEVICE, value: cpu}
      - {name: MLFLOW_S3_ENDPOINT_URL, value: "http://seaweedfs.mlflow:8333"}
      - {name: AWS_DEFAULT_REGION, value: us-east-1}
      - name: AWS_ACCESS_KEY_ID
        valueFrom: {secretKeyRef: {name: s3-credentials, key: AWS_ACCESS_KEY_ID}}
      - name: AWS_SECRET_ACCESS_KEY
        valueFrom: {secretKeyRef: {name: s3-credentials, key: AWS_SECRET_ACCESS_KEY}}
  service: {port: 80}
  rollout:
    autoPromote: true
    progressDeadlineSeconds: 900
    scaleDownDelaySeconds: 30
    postPromotionSeconds: 10
    smokeTest: {enabled: true}
EOF

log "waiting for phase Healthy (up to $healthy_timeout)"
kubectl -n "$ns" wait tryonmodel/dress --for=jsonpath='{.status.phase}'=Healthy \
  --timeout="$healthy_timeout"
kubectl -n "$ns" get tryonmodel dress -o wide

log "calling the renderer through Service $ns/dress from inside the cluster"
kubectl -n "$ns" run e2e-curl --rm -i --restart=Never --quiet \
  --image=curlimages/curl:8.10.1 \
  --overrides='{"spec":{"securityContext":{"runAsNonRoot":true,"runAsUser":100,"seccompProfile":{"type":"RuntimeDefault"}},"containers":[{"name":"e2e-curl","image":"curlimages/curl:8.10.1","args":["-fsS","--retry","10","--retry-all-errors","--retry-delay","2","http://dress/v1/model"],"securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}]}}' \
  | tee "$workdir/model.json"
grep -q "\"$model_name\"" "$workdir/model.json" || die "/v1/model does not name $model_name"

log "a try-on request through the Service (port-forward to service/dress)"
svc_port=""
port_forward svc_port service/dress "$ns" 80
"$python" - "$workdir" <<'PY'
import sys
from pathlib import Path
from PIL import Image

out = Path(sys.argv[1])
Image.new("RGB", (48, 64), (200, 150, 120)).save(out / "person.png")
Image.new("RGB", (48, 64), (20, 40, 200)).save(out / "garment.png")
PY
curl -fsS --retry 5 --retry-all-errors --retry-delay 2 \
  -F "person=@$workdir/person.png;type=image/png" \
  -F "garment=@$workdir/garment.png;type=image/png" \
  -o "$workdir/result.png" -w '%{http_code} %{content_type}\n' \
  "http://127.0.0.1:$svc_port/v1/tryon" | tee "$workdir/tryon.txt"
grep -q '^200 image/' "$workdir/tryon.txt" || die "try-on did not return an image"
"$python" -c 'import sys; from PIL import Image; im = Image.open(sys.argv[1]); im.verify(); print("result image", im.size)' \
  "$workdir/result.png"

log "e2e passed in $((SECONDS - started))s"
