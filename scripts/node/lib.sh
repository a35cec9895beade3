# shellcheck shell=bash
# Shared by scripts/node/*.sh (sourced, not run): names, paths and ports of the real test node.
#
# The node "hermes-node-0" is a real kubelet + kube-proxy + containerd on this machine, joined to
# the kwokctl control plane of the cluster "hermes-e2e" next to kwok's fake GPU nodes. Everything it
# owns lives under .e2e/node/ (state, sockets, logs, certificates) and in a few host objects that
# scripts/node/down.sh removes: the bridge $NODE_BRIDGE, the cgroup $NODE_CGROUP_ROOT in every v1
# hierarchy, iptables chains kube-proxy and the CNI plugins add, and ip_forward (restored).

NODE_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$NODE_SCRIPTS/../.." && pwd)
# shellcheck source=../k8s/versions.env
source "$REPO/scripts/k8s/versions.env"

CLUSTER_NAME=hermes-e2e
E2E=$REPO/.e2e
CACHE=${HERMES_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hermes-cache}
KWOK_CLUSTER_DIR=$E2E/kwok/clusters/$CLUSTER_NAME
CLUSTER_PKI=$KWOK_CLUSTER_DIR/pki
ADMIN_KUBECONFIG=$E2E/kubeconfig

NODE_NAME=hermes-node-0
NODE_STATE=$E2E/node
NODE_LOGS=$NODE_STATE/logs
NODE_PIDS=$NODE_STATE/pids
NODE_PKI=$NODE_STATE/pki
CONTAINERD_SOCK=$NODE_STATE/containerd.sock
CONTAINERD_ROOT=$NODE_STATE/containerd/root
CONTAINERD_STATE=$NODE_STATE/containerd/state
KUBELET_ROOT=$NODE_STATE/kubelet
CNI_CONF_DIR=$NODE_STATE/cni/net.d
CNI_DATA_DIR=$NODE_STATE/cni/networks
# Debian's containernetworking-plugins.
CNI_BIN_DIR=/usr/lib/cni
CNI_NETWORK=hermes-node

# Pod addresses of the real node. Not 10.244.0.0/16 (kwok hands those to fake pods) and not
# 10.88.0.0/16 or 10.89.0.0/16 (podman's own CNI networks on the same host).
POD_CIDR=10.250.0.0/16
NODE_POD_SUBNET=10.250.0.0/24
NODE_BRIDGE=hermes0
# Service range of the API server (scripts/cluster-up.sh); its first address is the `kubernetes`
# Service, which must be in the API server's certificate.
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SERVICE_IP=10.96.0.1

# Ports away from the control plane's (kwokctl picks 3xxxx ports) and from the defaults (10250,
# 10248, 10249, 10256) that another kubelet or kube-proxy on a developer's machine may hold.
KUBELET_PORT=11250
KUBELET_HEALTHZ_PORT=11248
PROXY_METRICS_PORT=11249
PROXY_HEALTHZ_PORT=11256

# kubelet's cgroup root in each cgroup v1 hierarchy (kubepods/... below it).
NODE_CGROUP_ROOT=hermes-node

NODE_COMPONENTS=(containerd kubelet kube-proxy)

# The project's podman settings (runc, cgroupfs, ulimits below the host's; scripts/image/), unless
# the caller chose others: podman fails on our machines without them.
if [[ -z ${CONTAINERS_CONF:-} && -f $REPO/scripts/image/containers.conf ]]; then
  export CONTAINERS_CONF=$REPO/scripts/image/containers.conf
fi

node_log() { printf '[node %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
node_die() { node_log "ERROR: $*"; exit 1; }

# The host address the node registers with and the API server advertises: the source address of
# the default route (pods reach it through their bridge gateway).
node_ip() {
  local ip
  ip=$(ip -4 route get 1.0.0.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n 1)
  [[ -n $ip ]] || ip=$(ip -4 route show default 2>/dev/null | awk '{print $5}' | head -n 1 |
    xargs -r ip -4 -o addr show dev 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -n 1)
  [[ -n $ip ]] || ip=$(hostname -I 2>/dev/null | awk '{print $1}')
  [[ -n $ip ]] || return 1
  echo "$ip"
}

# pid of a component started by scripts/node/up.sh, if it still runs (and is ours: its command
# line names our state dir).
node_pid() {
  local f=$NODE_PIDS/$1.pid pid
  [[ -f $f ]] || return 1
  pid=$(tr -dc '0-9' < "$f")
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF "$NODE_STATE" || return 1
  echo "$pid"
}

ctr_node() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }
