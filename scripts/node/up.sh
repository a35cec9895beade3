#!/usr/bin/env bash
# Start (or reuse) the real test node "hermes-node-0" of the local cluster: containerd (Debian's),
# kubelet and kube-proxy (built by scripts/k8s/build.sh), joined to the running kwokctl control
# plane. Called by scripts/cluster-up.sh after the API server is up; state under .e2e/node/.
#
# Environment: NODE_BIN (kubelet, kube-proxy) and K8S_BIN (kubectl) from scripts/k8s/build.sh;
# when unset, build.sh is run for them. HERMES_NODE_READY_TIMEOUT (default 120) seconds.
#
# A node whose three processes run, that uses the current cluster CA and is Ready is reused; anything
# else is torn down (scripts/node/down.sh) and started afresh.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

READY_TIMEOUT=${HERMES_NODE_READY_TIMEOUT:-120}
t_start=$(date +%s)
elapsed() { echo "$(($(date +%s) - t_start))s"; }

if [[ -z ${NODE_BIN:-} || -z ${K8S_BIN:-} ]]; then
  eval "$(bash "$REPO/scripts/k8s/build.sh" kubernetes node)"
fi
kubectl() { "$K8S_BIN/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }

for tool in containerd containerd-shim-runc-v2 runc ctr iptables conntrack openssl podman; do
  command -v "$tool" >/dev/null || node_die "'$tool' is not installed: run scripts/install-system.sh (as root)"
done
[[ -x $CNI_BIN_DIR/bridge && -x $CNI_BIN_DIR/host-local && -x $CNI_BIN_DIR/portmap ]] ||
  node_die "CNI plugins missing in $CNI_BIN_DIR: apt-get install containernetworking-plugins (scripts/install-system.sh)"
[[ $(id -u) -eq 0 ]] || node_die "the real node needs root (containers, bridge, iptables); run as root, or without it: HERMES_E2E_REAL_NODE=0 make cluster-up"
[[ -f $CLUSTER_PKI/ca.crt && -f $CLUSTER_PKI/ca.key ]] ||
  node_die "no cluster CA in $CLUSTER_PKI: start the control plane first (scripts/cluster-up.sh)"
[[ -s $ADMIN_KUBECONFIG ]] || node_die "no $ADMIN_KUBECONFIG: start the control plane first (scripts/cluster-up.sh)"

node_ready() {
  [[ $(kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

# ---------------------------------------------------------------- reuse
alive=1
for c in "${NODE_COMPONENTS[@]}"; do node_pid "$c" >/dev/null || alive=0; done
if ((alive)) && cmp -s "$NODE_PKI/ca.crt" "$CLUSTER_PKI/ca.crt" && node_ready; then
  node_log "node $NODE_NAME is running and Ready, reusing it"
  exit 0
fi
if [[ -d $NODE_STATE ]]; then
  node_log "node $NODE_NAME is not (fully) running; cleaning up and starting it again"
  bash "$NODE_SCRIPTS/down.sh"
fi

NODE_IP=$(node_ip) || node_die "cannot tell this host's IP address (no default route?); ip -4 route: $(ip -4 route 2>&1)"
API_SERVER=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
[[ $API_SERVER == https://* ]] || node_die "no https API server in $ADMIN_KUBECONFIG (got '$API_SERVER')"
for port in "$KUBELET_PORT" "$KUBELET_HEALTHZ_PORT" "$PROXY_METRICS_PORT" "$PROXY_HEALTHZ_PORT"; do
  if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
    node_die "port $port is already in use ($(ss -Hltnp "sport = :$port" | head -n 1)); the node's ports are set in scripts/node/lib.sh"
  fi
done

mkdir -p "$NODE_LOGS" "$NODE_PIDS" "$NODE_PKI" "$CONTAINERD_ROOT" "$CONTAINERD_STATE" "$KUBELET_ROOT" \
  "$CNI_CONF_DIR" "$CNI_DATA_DIR" "$NODE_STATE/pod-logs" "$NODE_STATE/runc"
chmod 700 "$NODE_PKI"

# ---------------------------------------------------------------- host settings (restored by down.sh)
# What down.sh must put back or may remove: only what was not there before.
{
  echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"
  echo "run_containerd_existed=$([[ -e /run/containerd ]] && echo 1 || echo 0)"
  echo "var_lib_kubelet_existed=$([[ -e /var/lib/kubelet ]] && echo 1 || echo 0)"
} > "$NODE_STATE/host-before.env"
ls /var/lib/cni/results 2>/dev/null > "$NODE_STATE/cni-results-before" || true
for t in nat filter mangle; do
  iptables -t "$t" -S 2>/dev/null | awk '$1 == "-N" {print $2}' > "$NODE_STATE/chains-before.$t" || true
done
# Pods reach Services and the API server through this host: it must route.
echo 1 > /proc/sys/net/ipv4/ip_forward

# kubelet's cgroup root in every v1 hierarchy; cpuset needs its cpus/mems filled before use.
for h in /sys/fs/cgroup/*/; do
  [[ -d $h && ! -L ${h%/} ]] || continue
  [[ -e ${h}cgroup.procs ]] || continue
  [[ ${h%/} == /sys/fs/cgroup/unified ]] && continue
  mkdir -p "$h$NODE_CGROUP_ROOT"
  if [[ -e ${h}cpuset.cpus ]]; then
    cat "${h}cpuset.cpus" > "$h$NODE_CGROUP_ROOT/cpuset.cpus"
    cat "${h}cpuset.mems" > "$h$NODE_CGROUP_ROOT/cpuset.mems"
  fi
done

# ---------------------------------------------------------------- certificates (cluster CA)
# sign NAME SUBJECT EXT: key + certificate signed by the kwokctl cluster CA, one year.
sign() {
  local name=$1 subj=$2 ext=$3
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$NODE_PKI/$name.key" 2>/dev/null
  openssl req -new -key "$NODE_PKI/$name.key" -subj "$subj" -out "$NODE_PKI/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" > "$NODE_PKI/$name.ext"
  openssl x509 -req -in "$NODE_PKI/$name.csr" -CA "$CLUSTER_PKI/ca.crt" -CAkey "$CLUSTER_PKI/ca.key" \
    -CAcreateserial -CAserial "$NODE_PKI/ca.srl" -days 365 -extfile "$NODE_PKI/$name.ext" \
    -out "$NODE_PKI/$name.crt" 2>/dev/null || node_die "signing the $name certificate with $CLUSTER_PKI/ca.key failed"
  rm -f "$NODE_PKI/$name.csr" "$NODE_PKI/$name.ext"
}
cp "$CLUSTER_PKI/ca.crt" "$NODE_PKI/ca.crt"
# The Node authorizer (kube-apiserver --authorization-mode=Node,RBAC) knows a kubelet by this name.
sign kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME" \
  "keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
# The API server calls the kubelet (logs, exec, port-forward) at the node's InternalIP.
sign kubelet-serving "/CN=$NODE_NAME" \
  "keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:$NODE_NAME,DNS:localhost,IP:$NODE_IP,IP:127.0.0.1"
# The built-in ClusterRoleBinding system:node-proxier grants kube-proxy's rights to this user.
sign kube-proxy "/CN=system:kube-proxy" \
  "keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"

kubeconfig() { # NAME: kubeconfig with the NAME client certificate
  cat > "$NODE_STATE/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $CLUSTER_NAME
  cluster:
    server: $API_SERVER
    certificate-authority: $NODE_PKI/ca.crt
users:
- name: $1
  user:
    client-certificate: $NODE_PKI/$1.crt
    client-key: $NODE_PKI/$1.key
contexts:
- name: $1
  context: {cluster: $CLUSTER_NAME, user: $1}
current-context: $1
EOF
  chmod 600 "$NODE_STATE/$1.kubeconfig"
}
kubeconfig kubelet-client
kubeconfig kube-proxy

# ---------------------------------------------------------------- containerd
PAUSE_IMAGE=$(bash "$NODE_SCRIPTS/images.sh" pause)
RUNC=$(command -v runc)
cat > "$NODE_STATE/containerd.toml" <<EOF
# Generated by scripts/node/up.sh: a private containerd for the test node (not the host's).
version = 2
root = "$CONTAINERD_ROOT"
state = "$CONTAINERD_STATE"
# opt would create /opt/containerd; the other snapshotters are not used.
disabled_plugins = ["io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

# The legacy v1 runtime is unused but required by the task service; keep its runc state ours too.
[plugins."io.containerd.runtime.v1.linux"]
  runtime_root = "$NODE_STATE/runc-v1"

[plugins."io.containerd.grpc.v1.cri"]
  # Built locally (scripts/node/images.sh pause): registry.k8s.io cannot be reached.
  sandbox_image = "$PAUSE_IMAGE"
  # The process lacks CAP_SYS_RESOURCE: CRI's oom_score_adj of -998 for sandboxes makes every runc
  # create fail ("can't get final child's PID from pipe: EOF"); this clamps it to ours.
  restrict_oom_score_adj = true
  # Pod network namespaces under our state dir, so down.sh finds and unmounts them.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # runc, not crun: crun refuses this host's hybrid cgroup layout. cgroupfs: no systemd here.
        BinaryName = "$RUNC"
        Root = "$NODE_STATE/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$CNI_CONF_DIR"
    max_conf_num = 1
EOF

# Bridge network for pods; the gateway is this host, so pods reach the host's addresses (the API
# server, kube-proxy's Service rules) through it. No masquerading: only this host is reached.
cat > "$CNI_CONF_DIR/10-$CNI_NETWORK.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$CNI_NETWORK",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$CNI_DATA_DIR",
        "ranges": [[{"subnet": "$NODE_POD_SUBNET"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF

start_bg() { # NAME CMD...: run detached, output to logs/NAME.log, pid to pids/NAME.pid
  local name=$1; shift
  setsid "$@" > "$NODE_LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$NODE_PIDS/$name.pid"
}
last_lines() { tail -n 20 "$NODE_LOGS/$1.log" 2>/dev/null | sed 's/^/    /' >&2 || true; }

node_log "starting containerd ($CONTAINERD_SOCK)"
start_bg containerd containerd --config "$NODE_STATE/containerd.toml"
for _ in $(seq 1 60); do
  [[ -S $CONTAINERD_SOCK ]] && ctr_node version >/dev/null 2>&1 && break
  node_pid containerd >/dev/null || break
  sleep 0.5
done
if ! ctr_node version >/dev/null 2>&1; then
  last_lines containerd
  node_die "containerd did not answer on $CONTAINERD_SOCK in 30 s; log $NODE_LOGS/containerd.log (last lines above)"
fi
bash "$NODE_SCRIPTS/load-image.sh" "$PAUSE_IMAGE"

# ---------------------------------------------------------------- kubelet
cat > "$NODE_STATE/kubelet.yaml" <<EOF
# Generated by scripts/node/up.sh.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $NODE_PKI/kubelet-serving.crt
tlsPrivateKeyFile: $NODE_PKI/kubelet-serving.key
rotateCertificates: false
serverTLSBootstrap: false
# The API server authenticates to us with the cluster's admin certificate (kube-apiserver
# --kubelet-client-certificate); anything else is checked with the API server (webhooks).
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true, cacheTTL: 30s}
  x509: {clientCAFile: $NODE_PKI/ca.crt}
authorization:
  mode: Webhook
  webhook: {cacheAuthorizedTTL: 30s, cacheUnauthorizedTTL: 10s}
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
imageServiceEndpoint: unix://$CONTAINERD_SOCK
# This host: cgroup v1 (hybrid), no systemd, swap possibly on.
cgroupDriver: cgroupfs
cgroupRoot: /$NODE_CGROUP_ROOT
failCgroupV1: false
failSwapOn: false
podLogsDir: $NODE_STATE/pod-logs
volumePluginDir: $KUBELET_ROOT/volume-plugins
# Imported images (scripts/node/load-image.sh) cannot be pulled again: never collect them, and do
# not evict pods because a developer's disk is fuller than a production node's would be.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
maxPods: 110
serializeImagePulls: false
shutdownGracePeriod: 0s
shutdownGracePeriodCriticalPods: 0s
resolvConf: /etc/resolv.conf
EOF

node_log "starting kubelet (node $NODE_NAME, $NODE_IP:$KUBELET_PORT)"
start_bg kubelet "$NODE_BIN/kubelet" \
  --config="$NODE_STATE/kubelet.yaml" \
  --kubeconfig="$NODE_STATE/kubelet-client.kubeconfig" \
  --root-dir="$KUBELET_ROOT" \
  --cert-dir="$NODE_PKI" \
  --hostname-override="$NODE_NAME" \
  --node-ip="$NODE_IP" \
  --node-labels="hermes-cache.dev/node=real" \
  --v=2

# ---------------------------------------------------------------- kube-proxy
cat > "$NODE_STATE/kube-proxy.yaml" <<EOF
# Generated by scripts/node/up.sh.
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $NODE_STATE/kube-proxy.kubeconfig
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:$PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$PROXY_METRICS_PORT
nodePortAddresses: ["$NODE_IP/32"]
iptables:
  # true would set net.ipv4.conf.all.route_localnet on the host.
  localhostNodePorts: false
  masqueradeAll: false
# Leave the host's conntrack settings alone (0 = do not change).
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
node_log "starting kube-proxy (iptables)"
start_bg kube-proxy "$NODE_BIN/kube-proxy" --config="$NODE_STATE/kube-proxy.yaml" --v=2

# ---------------------------------------------------------------- wait for Ready
deadline=$(($(date +%s) + READY_TIMEOUT))
until node_ready; do
  for c in "${NODE_COMPONENTS[@]}"; do
    if ! node_pid "$c" >/dev/null; then
      last_lines "$c"
      node_die "$c exited while the node was starting; log $NODE_LOGS/$c.log (last lines above)"
    fi
  done
  if (($(date +%s) > deadline)); then
    kubectl get node "$NODE_NAME" -o wide >&2 || true
    last_lines kubelet
    node_die "the node did not become Ready in ${READY_TIMEOUT}s; kubelet log $NODE_LOGS/kubelet.log (last lines above)"
  fi
  sleep 1
done
node_log "node $NODE_NAME is Ready ($NODE_IP, pods $NODE_POD_SUBNET on $NODE_BRIDGE) after $(elapsed)"
