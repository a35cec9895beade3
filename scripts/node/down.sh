#!/usr/bin/env bash
# Stop the real test node "hermes-node-0" and remove everything it left on the host: its pods
# (runc tasks), kube-proxy, kubelet and containerd, the mounts under .e2e/node/, the kubelet's
# cgroups, the pod bridge, the iptables chains kube-proxy and the CNI plugins added, ip_forward
# (restored), and finally .e2e/node/ itself. Deletes the Node object while the API server answers.
# Called by scripts/cluster-down.sh (before the control plane stops) and by scripts/node/up.sh
# (for a dead node). Exits 0 when nothing runs.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KUBECTL=""
for c in "$E2E/bin/kubectl" "$CACHE/k8s-$KUBE_VERSION/bin/kubectl"; do
  if [[ -x $c ]]; then KUBECTL=$c; break; fi
done
KUBE_PROXY=$CACHE/k8s-node-$KUBE_VERSION/bin/kube-proxy
kubectl() { "$KUBECTL" --kubeconfig "$ADMIN_KUBECONFIG" --request-timeout=5s "$@"; }
api_up() { [[ -n $KUBECTL && -s $ADMIN_KUBECONFIG ]] && kubectl get --raw /readyz >/dev/null 2>&1; }

stop_pid() { # NAME PID [SECONDS]: TERM, wait, KILL
  local name=$1 pid=$2 wait=${3:-10} i
  kill -0 "$pid" 2>/dev/null || return 0
  node_log "stopping $name (pid $pid)"
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < wait * 5; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  node_log "$name (pid $pid) did not stop in ${wait}s; killing it"
  kill -9 "$pid" 2>/dev/null || true
  for ((i = 0; i < 25; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
}

# ---------------------------------------------------------------- pods (while kubelet runs)
if api_up && kubectl get node "$NODE_NAME" >/dev/null 2>&1; then
  if node_pid kubelet >/dev/null; then
    # Let the kubelet stop the pods itself: CNI then releases their addresses and rules. Cordoned
    # first, so that controllers do not place replacements on it meanwhile.
    kubectl cordon "$NODE_NAME" >/dev/null 2>&1 || true
    pods=$(kubectl get pods -A --field-selector "spec.nodeName=$NODE_NAME" \
      -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}{"\n"}{end}' 2>/dev/null || true)
    if [[ -n $pods ]]; then
      node_log "deleting $(wc -l <<<"$pods") pod(s) on $NODE_NAME"
      while IFS=/ read -r ns name; do
        kubectl -n "$ns" delete pod "$name" --grace-period=2 --wait=false >/dev/null 2>&1 || true
      done <<<"$pods"
      for _ in $(seq 1 30); do
        left=0
        while IFS=/ read -r ns name; do
          if kubectl -n "$ns" get pod "$name" >/dev/null 2>&1; then left=1; break; fi
        done <<<"$pods"
        ((left)) || break
        sleep 1
      done
    fi
  fi
  node_log "deleting the Node object $NODE_NAME"
  kubectl delete node "$NODE_NAME" --wait=false >/dev/null 2>&1 || true
fi

[[ -d $NODE_STATE ]] || exit 0

# ---------------------------------------------------------------- processes
if pid=$(node_pid kube-proxy); then stop_pid kube-proxy "$pid"; fi
if pid=$(node_pid kubelet); then stop_pid kubelet "$pid"; fi

# Whatever pods are left: kill their tasks through containerd, then any process still in the
# kubelet's cgroups (all pod processes are below $NODE_CGROUP_ROOT).
if node_pid containerd >/dev/null && ctr_node version >/dev/null 2>&1; then
  for id in $(ctr_node tasks ls -q 2>/dev/null); do
    ctr_node tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true
  done
  sleep 0.5
  for id in $(ctr_node tasks ls -q 2>/dev/null); do
    ctr_node tasks delete -f "$id" >/dev/null 2>&1 || true
  done
fi
for h in /sys/fs/cgroup/*/"$NODE_CGROUP_ROOT"; do
  [[ -d $h ]] || continue
  find "$h" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u | while read -r p; do
    [[ -n $p ]] && kill -9 "$p" 2>/dev/null || true
  done
done
if pid=$(node_pid containerd); then stop_pid containerd "$pid"; fi
# The shims our containerd started name its socket on their command line.
for d in /proc/[0-9]*; do
  [[ -r $d/cmdline ]] || continue
  if tr '\0' ' ' < "$d/cmdline" 2>/dev/null | grep -qF -- "-address $CONTAINERD_SOCK "; then
    stop_pid "containerd-shim" "${d#/proc/}" 3
  fi
done

# ---------------------------------------------------------------- mounts, cgroups, network
# Deepest first; lazily when still busy.
mapfile -t mounts < <(awk -v s="$NODE_STATE/" 'index($5, s) == 1 {print $5}' /proc/self/mountinfo | sort -r)
for m in "${mounts[@]}"; do
  m=$(printf '%b' "$m")   # mountinfo escapes spaces as \040
  umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || node_log "could not unmount $m"
done
for h in /sys/fs/cgroup/*/"$NODE_CGROUP_ROOT"; do
  [[ -d $h ]] || continue
  find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  [[ -d $h ]] && node_log "cgroup $h is still there (busy?)"
done

for link in $(ip -o link show master "$NODE_BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
  ip link del "$link" 2>/dev/null || true
done
if ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
  node_log "removing bridge $NODE_BRIDGE"
  ip link del "$NODE_BRIDGE" || true
fi

# kube-proxy removes its own chains; then whatever KUBE-/CNI- chain appeared while the node ran
# (recorded by up.sh) and every rule that jumps to one, plus rules naming our CNI network.
if [[ -x $KUBE_PROXY ]]; then
  "$KUBE_PROXY" --cleanup > "$NODE_STATE/kube-proxy-cleanup.log" 2>&1 || true
fi
for t in nat filter mangle; do
  before=$NODE_STATE/chains-before.$t
  [[ -f $before ]] || continue
  mapfile -t new < <(iptables -t "$t" -S 2>/dev/null | awk '$1 == "-N" {print $2}' |
    grep -E '^(KUBE-|CNI-)' | grep -vxF -f "$before" || true)
  # Rules jumping to a new chain, and rules that name our network (the CNI plugins' comments).
  { iptables -t "$t" -S 2>/dev/null || true; } | { grep '^-A ' || true; } | while read -r rule; do
    target=$(sed -n 's/.* -j \([^ ]*\).*/\1/p' <<<"$rule")
    if [[ " ${new[*]} " == *" $target "* ]] || [[ $rule == *"\"$CNI_NETWORK\""* ]]; then
      eval "iptables -t $t ${rule/-A /-D }" 2>/dev/null || true
    fi
  done
  for c in "${new[@]}"; do iptables -t "$t" -F "$c" 2>/dev/null || true; done
  for c in "${new[@]}"; do iptables -t "$t" -X "$c" 2>/dev/null || node_log "could not remove iptables chain $t/$c"; done
done

# ---------------------------------------------------------------- host settings, files
if [[ -f $NODE_STATE/host-before.env ]]; then
  ip_forward=$(sed -n 's/^ip_forward=//p' "$NODE_STATE/host-before.env")
  if [[ $ip_forward == [01] ]]; then echo "$ip_forward" > /proc/sys/net/ipv4/ip_forward; fi
  if [[ $(sed -n 's/^run_containerd_existed=//p' "$NODE_STATE/host-before.env") == 0 ]]; then
    # The shims' sockets live in /run/containerd/s (containerd 1.6 fixes that path).
    rmdir /run/containerd/s /run/containerd 2>/dev/null || true
  fi
  if [[ $(sed -n 's/^var_lib_kubelet_existed=//p' "$NODE_STATE/host-before.env") == 0 ]]; then
    # The kubelet's device-plugin directory is fixed to /var/lib/kubelet/device-plugins, whatever
    # its --root-dir.
    rm -f /var/lib/kubelet/device-plugins/kubelet.sock /var/lib/kubelet/device-plugins/kubelet_internal_checkpoint
    rmdir /var/lib/kubelet/device-plugins /var/lib/kubelet 2>/dev/null || true
  fi
fi
# CNI's result cache (fixed to /var/lib/cni/results in containerd 1.6): our network's entries, and
# the loopback entries CRI made while the node ran.
rm -f /var/lib/cni/results/"$CNI_NETWORK"-* 2>/dev/null || true
if [[ -f $NODE_STATE/cni-results-before ]]; then
  for f in /var/lib/cni/results/cni-loopback-*; do
    [[ -e $f ]] || continue
    grep -qxF "$(basename "$f")" "$NODE_STATE/cni-results-before" || rm -f "$f"
  done
fi
rm -rf "$NODE_STATE" 2>/dev/null || {
  node_log "could not remove all of $NODE_STATE (still mounted?): $(awk -v s="$NODE_STATE/" 'index($5, s) == 1 {print $5}' /proc/self/mountinfo | head -n 3)"
  exit 1
}
node_log "node $NODE_NAME is down; state removed"
