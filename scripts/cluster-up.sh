#!/usr/bin/env bash
# Start (or reuse) the local Kubernetes test cluster "hermes-e2e" with fake GPU nodes.
#
# - builds or reuses etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
#   kwok, kwokctl and helm (scripts/k8s/build.sh, cached per user and version);
# - starts the control plane with `kwokctl --runtime binary`, every component bound to 127.0.0.1
#   except kube-apiserver (all addresses: pods of the real node reach it through the `kubernetes`
#   Service at the host's address), its state under .e2e/kwok/ (KWOK_WORKDIR);
# - creates fake GPU nodes managed by kwok (4 x A100, 4 x H100 by default, 8 nvidia.com/gpu each:
#   a 2-node LeaderWorkerSet group scaled to 2 groups needs 4 nodes of one type);
# - runs the LeaderWorkerSet controller (sigs.k8s.io/lws, built by scripts/k8s/build.sh) as a local
#   process with upstream's CRD and admission webhooks (see "LeaderWorkerSet" below);
# - starts one real node, hermes-node-0 (containerd + kubelet + kube-proxy, scripts/node/up.sh),
#   that runs real pods; kwok manages only the nodes annotated kwok.x-k8s.io/node=fake;
# - waits for the API server and nodes, checks that a ServiceAccount token can be minted and that
#   a Deployment tolerating the kwok taint gets Running pods;
# - writes .e2e/kubeconfig and links kubectl, helm and kwokctl into .e2e/bin/.
#
# Safe to run twice: a running cluster is reused. Environment knobs:
#   HERMES_E2E_NODES_PER_TYPE (default 4)   fake nodes per GPU type
#   HERMES_LWS_WEBHOOK_PORT (default 19443) the LWS webhook's port on this host (health: port + 1)
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
NODES_PER_TYPE=${HERMES_E2E_NODES_PER_TYPE:-4}
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
ln -sfn "$LWS_BIN/lws-controller" "$E2E/bin/lws-controller"
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
  # Admission webhooks (LeaderWorkerSet's) are called at their Service's endpoints, not its
  # ClusterIP: the LWS controller runs on this host, behind a Service without selector whose
  # EndpointSlice names the host's address (no kube-proxy needed on the API server's path).
  - key: enable-aggregator-routing
    value: "true"
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

# ------------------------------------------------------------------ LeaderWorkerSet
# The controller of sigs.k8s.io/lws runs here as a process, like kwokctl's controllers, with the
# admin kubeconfig. Upstream's manifests come from the same module version (scripts/k8s/build.sh
# copies its config/): the CRDs, the admission webhooks and the webhook Service and Secret, through
# an overlay equal to upstream's config/default minus the Deployment, the RBAC and the metrics
# Service (nothing runs in a pod), and with the Service's selector removed: its EndpointSlice points
# at this host instead. The controller's internal cert management (open-policy-agent's
# cert-controller, set up by upstream's main.go) creates the CA and the serving certificate for
# lws-webhook-service.lws-system.svc, stores them in the Secret lws-webhook-server-cert and patches
# the CA bundle into both webhook configurations; in a pod the kubelet would then mount the Secret
# into the cert dir, which the rotator waits for: here cluster-up copies the two files over.
LWS_STATE=$E2E/lws
LWS_PORT=${HERMES_LWS_WEBHOOK_PORT:-19443}
LWS_HEALTH=127.0.0.1:$((LWS_PORT + 1))
mkdir -p "$LWS_STATE/certs"

lws_alive() {
  local pid
  [[ -f $LWS_STATE/lws.pid ]] || return 1
  pid=$(tr -dc '0-9' < "$LWS_STATE/lws.pid")
  [[ -n $pid && -r /proc/$pid/cmdline ]] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF "$LWS_STATE/config.yaml"
}
lws_ready() { curl -fsS --max-time 2 "http://$LWS_HEALTH/readyz" >/dev/null 2>&1; }

ln -sfn "$LWS_BIN/config" "$LWS_STATE/upstream"
cat > "$LWS_STATE/kustomization.yaml" <<EOF
namespace: lws-system
namePrefix: lws-
labels:
- pairs: {app.kubernetes.io/name: lws, app.kubernetes.io/instance: lws}
resources:
- upstream/crd
- upstream/webhook
- upstream/internalcert
patches:
- target: {kind: Service, name: webhook-service}
  patch: |-
    - op: remove
      path: /spec/selector
EOF
cat > "$LWS_STATE/endpoints.yaml" <<EOF
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: lws-webhook-service-host
  namespace: lws-system
  labels:
    kubernetes.io/service-name: lws-webhook-service
    endpointslice.kubernetes.io/managed-by: hermes-cache-cluster-up
addressType: IPv4
ports:
- {port: $LWS_PORT, protocol: TCP}
endpoints:
- addresses: ["$HOST_IP"]
  conditions: {ready: true}
EOF
cat > "$LWS_STATE/config.yaml" <<EOF
apiVersion: config.lws.x-k8s.io/v1alpha1
kind: Configuration
leaderElection:
  leaderElect: false
internalCertManagement:
  enable: true
webhook:
  host: $HOST_IP
  port: $LWS_PORT
  certDir: $LWS_STATE/certs
metrics:
  bindAddress: "0"
health:
  healthProbeBindAddress: $LWS_HEALTH
EOF
log "LeaderWorkerSet $LWS_VERSION: CRDs and webhooks (upstream's config/ through $LWS_STATE/kustomization.yaml)"
kubectl create namespace lws-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
# Server-side: the CRDs are too large for the last-applied annotation of a client-side apply.
kubectl kustomize "$LWS_STATE" | kubectl apply --server-side --force-conflicts -f - >/dev/null ||
  die "applying LeaderWorkerSet's manifests failed"
kubectl apply -f "$LWS_STATE/endpoints.yaml" >/dev/null
if lws_alive; then
  log "LeaderWorkerSet controller is already running (pid $(cat "$LWS_STATE/lws.pid"))"
else
  log "starting the LeaderWorkerSet controller (log $LWS_STATE/lws.log)"
  KUBECONFIG=$KUBECONFIG_OUT setsid "$LWS_BIN/lws-controller" --config "$LWS_STATE/config.yaml" \
    >"$LWS_STATE/lws.log" 2>&1 </dev/null &
  echo $! > "$LWS_STATE/lws.pid"
fi
# The Secret's tls.crt and tls.key into the cert dir, as the kubelet's Secret volume would do.
lws_mount_certs() {
  local key data
  for key in tls.crt tls.key; do
    data=$(kubectl -n lws-system get secret lws-webhook-server-cert -o jsonpath="{.data.${key//./\\.}}" 2>/dev/null) || return 1
    [[ -n $data ]] || return 1
    base64 -d <<<"$data" > "$LWS_STATE/certs/$key.tmp" && mv "$LWS_STATE/certs/$key.tmp" "$LWS_STATE/certs/$key"
  done
  chmod 600 "$LWS_STATE/certs/tls.key"
}
for _ in $(seq 1 60); do lws_mount_certs && break; lws_alive || break; sleep 1; done
for _ in $(seq 1 90); do lws_ready && break; lws_alive || break; sleep 1; done
if ! lws_ready; then
  tail -n 40 "$LWS_STATE/lws.log" >&2 || true
  die "the LeaderWorkerSet controller did not become ready (log $LWS_STATE/lws.log)"
fi
kubectl wait --for=condition=Established crd/leaderworkersets.leaderworkerset.x-k8s.io --timeout=60s >/dev/null
# Ready once the API server gets through the webhooks: a server-side dry run passes both of them.
lws_probe() {
  kubectl apply --dry-run=server -f - >/dev/null 2>&1 <<EOF
apiVersion: leaderworkerset.x-k8s.io/v1
kind: LeaderWorkerSet
metadata: {name: cluster-up-probe, namespace: default}
spec:
  leaderWorkerTemplate:
    size: 2
    workerTemplate:
      spec:
        containers: [{name: c, image: registry.invalid/none:0}]
EOF
}
for _ in $(seq 1 60); do lws_probe && break; sleep 1; done
lws_probe || { tail -n 40 "$LWS_STATE/lws.log" >&2; die "LeaderWorkerSet's webhooks do not answer (log $LWS_STATE/lws.log)"; }
log "LeaderWorkerSet controller ready (webhook at $HOST_IP:$LWS_PORT)"

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

  log "self-check: a LeaderWorkerSet group of 2 pods on fake A100 nodes"
  kubectl -n "$CHECK_NS" apply -f - >&2 <<EOF
apiVersion: leaderworkerset.x-k8s.io/v1
kind: LeaderWorkerSet
metadata:
  name: group-check
spec:
  replicas: 1
  leaderWorkerTemplate:
    size: 2
    restartPolicy: RecreateGroupOnPodRestart
    workerTemplate:
      spec:
        nodeSelector:
          nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB
        tolerations:
        - {key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}
        containers:
        - name: c
          image: registry.invalid/none:0
          resources:
            limits: {nvidia.com/gpu: "8"}
EOF
  if ! kubectl -n "$CHECK_NS" wait --for=jsonpath='{.status.readyReplicas}'=1 lws/group-check --timeout=120s >&2; then
    kubectl -n "$CHECK_NS" get lws,pods -o wide >&2 || true
    tail -n 25 "$LWS_STATE/lws.log" >&2 || true
    die "the test LeaderWorkerSet did not become ready"
  fi
  kubectl delete namespace "$CHECK_NS" --wait=false >/dev/null
fi

log "cluster $CLUSTER_NAME ready in $(elapsed) (server $server_version)"
kubectl get nodes -L nvidia.com/gpu.product -L hermes-cache.dev/node >&2
cat >&2 <<EOF
  export KUBECONFIG=$KUBECONFIG_OUT
  export PATH=$E2E/bin:\$PATH
EOF
