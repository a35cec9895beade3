#!/usr/bin/env bash
# Start (or reuse) the local Kubernetes test cluster "hermes-e2e" with fake GPU nodes.
#
# - builds or reuses etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
#   kwok, kwokctl and helm (scripts/k8s/build.sh, cached per user and version);
# - starts the control plane with `kwokctl --runtime binary`, every component bound to 127.0.0.1
#   except kube-apiserver (all addresses: pods of the real node reach it through the `kubernetes`
#   Service at the host's address), its state under .e2e/kwok/ (KWOK_WORKDIR);
# - creates fake GPU nodes managed by kwok (2 x A100, 2 x H100 by default, 8 nvidia.com/gpu each);
# - starts one real node, hermes-node-0 (containerd + kubelet + kube-proxy, scripts/node/up.sh),
#   that runs real pods; kwok manages only the nodes annotated kwok.x-k8s.io/node=fake;
# - waits for the API server and nodes, checks that a ServiceAccount token can be minted and that
#   a Deployment tolerating the kwok taint gets Running pods;
# - writes .e2e/kubeconfig and links kubectl, helm and kwokctl into .e2e/bin/.
#
# Safe to run twice: a running cluster is reused. Environment knobs:
#   HERMES_E2E_NODES_PER_TYPE (default 2)   fake nodes per GPU type
#   HERMES_CLUSTER_CHECK=0                  skip the Deployment/token self-check
#   HERMES_E2E_REAL_NODE=0                  no real node (kwok's fake nodes only)
#   HERMES_CACHE_DIR                        binary cache root (see scripts/k8s/build.sh)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=k8s/versions.env
source "$root/scripts/k8s/versions.env"
# shellcheck source=node/lib.sh
source "$root/scripts/node/lib.sh"   # node_ip, KUBERNETES_SERVICE_IP, SERVICE_CIDR, NODE_NAME

CLUSTER_NAME=hermes-e2e
E2E=$root/.e2e
export KWOK_WORKDIR=$E2E/kwok
KUBECONFIG_OUT=$E2E/kubeconfig
NODES_PER_TYPE=${HERMES_E2E_NODES_PER_TYPE:-2}
REAL_NODE=${HERMES_E2E_REAL_NODE:-1}
HOST_IP=$(node_ip) || { echo "cluster-up: cannot tell this host's IP address (no default route?)" >&2; exit 1; }
PKI_DIR=$KWOK_WORKDIR/clusters/$CLUSTER_NAME/pki
CHECK_NS=hermes-cluster-check-$(date +%s)-$$

t_start=$(date +%s)
log() { printf '[cluster-up %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
elapsed() { echo "$(($(date +%s) - t_start))s"; }
die() { log "ERROR: $*"; exit 1; }

mkdir -p "$E2E/bin" "$KWOK_WORKDIR"

# ------------------------------------------------------------------ binaries
log "building or reusing binaries (scripts/k8s/build.sh)"
build_out=$(bash "$root/scripts/k8s/build.sh") || die "building the binaries failed (see messages above)"
eval "$build_out"
log "binaries ready after $(elapsed)"

ln -sfn "$K8S_BIN/kubectl" "$E2E/bin/kubectl"
ln -sfn "$HELM_BIN/helm" "$E2E/bin/helm"
ln -sfn "$KWOK_BIN/kwokctl" "$E2E/bin/kwokctl"
KWOKCTL=$KWOK_BIN/kwokctl
kubectl() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_OUT" "$@"; }

api_ready() {
  [[ -s $KUBECONFIG_OUT ]] && kubectl get --raw /readyz --request-timeout=5s >/dev/null 2>&1
}

cluster_logs() {
  local d=$KWOK_WORKDIR/clusters/$CLUSTER_NAME/logs f
  [[ -d $d ]] || return 0
  for f in "$d"/*.log; do
    [[ -f $f ]] || continue
    log "---- last lines of $f"
    tail -n 25 "$f" >&2 || true
  done
}

# ------------------------------------------------------------------ control plane
cluster_exists() { "$KWOKCTL" get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; }

# Every component kwokctl started is still alive (its pid file names a process of this cluster).
components_alive() {
  local dir=$KWOK_WORKDIR/clusters/$CLUSTER_NAME c pid
  for c in etcd kube-apiserver kube-controller-manager kube-scheduler kwok-controller; do
    [[ -f $dir/pids/$c.pid ]] || return 1
    pid=$(tr -dc '0-9' < "$dir/pids/$c.pid")
    [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF "$dir" || return 1
  done
}

write_config() { # FILE
  # Local binaries are linked by kwokctl, never downloaded. bindAddress keeps every component
  # (etcd, controller-manager, scheduler, kwok) on the loopback interface; the API server is
  # patched below.
  cat > "$1" <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: 127.0.0.1
  kubeVersion: ${KUBE_VERSION}
  etcdVersion: ${ETCD_VERSION#v}
  kwokVersion: ${KWOK_VERSION}
  kubeApiserverBinary: ${K8S_BIN}/kube-apiserver
  kubeControllerManagerBinary: ${K8S_BIN}/kube-controller-manager
  kubeSchedulerBinary: ${K8S_BIN}/kube-scheduler
  kubectlBinary: ${K8S_BIN}/kubectl
  etcdBinary: ${ETCD_BIN}/etcd
  kwokControllerBinary: ${KWOK_BIN}/kwok
  securePort: true
  kubeAuthorization: true
  kubeAdmission: true
  # kwokctl's one serving certificate names the host's addresses and kubernetes.default.svc; pods
  # that call https://KUBERNETES_SERVICE_HOST also need the Service IP in it.
  kubeApiserverCertSANs:
  - ${KUBERNETES_SERVICE_IP}
  - ${HOST_IP}
# kube-apiserver's default Service range (10.0.0.0/24) and kwok's default pod range (the same /24)
# hold about 254 addresses: too few for the scale benchmark's 1,000 policies (one Service each).
componentsPatches:
- name: kube-apiserver
  extraArgs:
  - key: service-cluster-ip-range
    value: ${SERVICE_CIDR}
  # Pods of the real node reach the API server through the kubernetes Service, whose endpoint is
  # the advertised address: listen there too, not only on 127.0.0.1.
  - key: bind-address
    value: 0.0.0.0
    override: true
  - key: advertise-address
    value: ${HOST_IP}
  # kubectl logs/exec/port-forward: the API server authenticates to the real kubelet with the
  # cluster's admin certificate (kwokctl sets no kubelet client certificate).
  - key: kubelet-client-certificate
    value: ${PKI_DIR}/admin.crt
  - key: kubelet-client-key
    value: ${PKI_DIR}/admin.key
  # The real node's Hostname address (hermes-node-0) resolves nowhere: call kubelets at their
  # InternalIP first. kwok's fake nodes have only Hostname=localhost, which still works.
  - key: kubelet-preferred-address-types
    value: InternalIP,Hostname
- name: kwok-controller
  extraArgs:
  - key: cidr
    value: 10.244.0.0/16
  # kwok (binary runtime) manages every node by default: it would take over the real node and
  # delete its pods. Only the fake nodes, which cluster-up annotates, are kwok's.
  - key: manage-all-nodes
    value: "false"
    override: true
  - key: manage-nodes-with-annotation-selector
    value: kwok.x-k8s.io/node=fake
EOF
}

create_cluster() {
  write_config "$E2E/kwokctl.yaml"
  # --kubeconfig "": do not touch ~/.kube/config; we write .e2e/kubeconfig ourselves.
  "$KWOKCTL" create cluster --name "$CLUSTER_NAME" --config "$E2E/kwokctl.yaml" \
    --runtime binary --kubeconfig "" --wait 2m --timeout 5m >&2
}

# A running cluster started from another configuration (an older script, another host address)
# is recreated.
write_config "$E2E/kwokctl.yaml.want"
config_same() { cmp -s "$E2E/kwokctl.yaml.want" "$E2E/kwokctl.yaml"; }
if cluster_exists && components_alive && api_ready && config_same; then
  log "cluster $CLUSTER_NAME is already running, reusing it"
else
  if cluster_exists && ! config_same; then
    log "cluster $CLUSTER_NAME was started with another configuration; deleting and recreating it"
    bash "$root/scripts/cluster-down.sh"
  elif cluster_exists; then
    # A stopped cluster (e.g. its processes were ended with the last session) is not restarted:
    # the restarted kwok controller would wait out the old node leases (200 s) before it handles
    # pods again. The tests create everything they need, so a fresh cluster is simpler and faster.
    log "cluster $CLUSTER_NAME exists but is not (fully) running; deleting and recreating it"
    bash "$root/scripts/cluster-down.sh"
  fi
  log "creating cluster $CLUSTER_NAME (kwokctl --runtime binary, 127.0.0.1; API server also on $HOST_IP)"
  if ! create_cluster; then
    cluster_logs
    die "kwokctl create cluster failed"
  fi
fi

# (Re)write the kubeconfig from kwokctl's state: cheap, and the port is chosen at creation.
if "$KWOKCTL" get kubeconfig --name "$CLUSTER_NAME" > "$KUBECONFIG_OUT.tmp" 2>/dev/null && [[ -s $KUBECONFIG_OUT.tmp ]]; then
  mv "$KUBECONFIG_OUT.tmp" "$KUBECONFIG_OUT"; chmod 600 "$KUBECONFIG_OUT"
else
  rm -f "$KUBECONFIG_OUT.tmp"
fi

log "waiting for the API server"
for _ in $(seq 1 120); do api_ready && break; sleep 1; done
api_ready || { cluster_logs; die "API server not ready after 120s (kubeconfig $KUBECONFIG_OUT)"; }
server_version=$(kubectl version -o json | sed -n '/serverVersion/,/}/s/.*"gitVersion": "\(.*\)".*/\1/p')
log "API server ready: $server_version"
[[ $server_version == "$KUBE_VERSION" ]] || die "server reports $server_version, expected $KUBE_VERSION"

# ------------------------------------------------------------------ fake GPU nodes
gpu_node() { # name product type
  cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: $1
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: $1
    node-role.kubernetes.io/agent: ""
    nvidia.com/gpu.present: "true"
    nvidia.com/gpu.product: $2
    nvidia.com/gpu.count: "8"
    nvidia.com/gpu.memory: "81920"
    hermes-cache.dev/gpu-type: $3
spec:
  taints:
  - key: kwok.x-k8s.io/node
    value: fake
    effect: NoSchedule
status:
  capacity: &res
    cpu: "96"
    memory: 1000Gi
    ephemeral-storage: 2000Gi
    pods: "110"
    nvidia.com/gpu: "8"
  allocatable: *res
  nodeInfo:
    architecture: amd64
    operatingSystem: linux
    kubeletVersion: fake
    kernelVersion: fake
    osImage: fake
    containerRuntimeVersion: fake
EOF
}

nodes_manifest() {
  local i
  for ((i = 0; i < NODES_PER_TYPE; i++)); do
    gpu_node "kwok-a100-$i" NVIDIA-A100-SXM4-80GB a100
    gpu_node "kwok-h100-$i" NVIDIA-H100-80GB-HBM3 h100
  done
}
log "creating $((2 * NODES_PER_TYPE)) fake GPU nodes"
nodes_manifest | kubectl apply -f - >&2
kubectl wait --for=condition=Ready node -l type=kwok --timeout=120s >&2 ||
  { cluster_logs; die "kwok nodes did not become Ready"; }

# ------------------------------------------------------------------ the real node
if [[ $REAL_NODE != 0 ]]; then
  log "starting or reusing the real node (scripts/node/up.sh)"
  K8S_BIN=$K8S_BIN NODE_BIN=$NODE_BIN bash "$root/scripts/node/up.sh" ||
    die "the real node $NODE_NAME did not start (see above; logs in $NODE_LOGS)"
fi

# ------------------------------------------------------------------ self-check
if [[ ${HERMES_CLUSTER_CHECK:-1} != 0 ]]; then
  log "self-check: ServiceAccount token and a Deployment on fake H100 nodes"
  for _ in $(seq 1 60); do kubectl -n default get serviceaccount default >/dev/null 2>&1 && break; sleep 1; done
  token=$(kubectl -n default create token default --duration=10m) || die "kubectl create token failed"
  [[ $token == *.*.* ]] || die "kubectl create token returned no JWT"

  kubectl create namespace "$CHECK_NS" >/dev/null
  kubectl -n "$CHECK_NS" apply -f - >&2 <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: gpu-check
spec:
  replicas: 2
  selector:
    matchLabels: {app: gpu-check}
  template:
    metadata:
      labels: {app: gpu-check}
    spec:
      nodeSelector:
        nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3
      tolerations:
      - {key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}
      containers:
      - name: c
        image: registry.invalid/none:0
        resources:
          limits: {nvidia.com/gpu: "1"}
EOF
  if ! kubectl -n "$CHECK_NS" rollout status deployment/gpu-check --timeout=120s >&2; then
    kubectl -n "$CHECK_NS" get pods -o wide >&2 || true
    kubectl -n "$CHECK_NS" get events >&2 || true
    cluster_logs
    die "test Deployment did not become available"
  fi
  running=$(kubectl -n "$CHECK_NS" get pods -l app=gpu-check \
    -o jsonpath='{range .items[*]}{.status.phase}/{.spec.nodeName}{"\n"}{end}')
  log "test pods: $(echo "$running" | tr '\n' ' ')"
  [[ $(grep -c '^Running/kwok-h100-' <<<"$running") -eq 2 ]] || die "test pods are not Running on H100 nodes"
  kubectl delete namespace "$CHECK_NS" --wait=false >/dev/null
fi

log "cluster $CLUSTER_NAME ready in $(elapsed) (server $server_version)"
kubectl get nodes -L nvidia.com/gpu.product -L hermes-cache.dev/node >&2
cat >&2 <<EOF
  export KUBECONFIG=$KUBECONFIG_OUT
  export PATH=$E2E/bin:\$PATH
EOF
