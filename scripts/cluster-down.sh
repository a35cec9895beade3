#!/usr/bin/env bash
# Stop the local test cluster "hermes-e2e" and remove its state (.e2e/kwok, .e2e/kubeconfig,
# .e2e/kwokctl.yaml). First the real node hermes-node-0 (scripts/node/down.sh: its pods, kube-proxy,
# kubelet, containerd, mounts, bridge, iptables chains, .e2e/node), while the API server still
# answers; then the LeaderWorkerSet controller (.e2e/lws, started by cluster-up). Keeps the cached
# binaries and the .e2e/bin links. Exits 0 when nothing runs.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=k8s/versions.env
source "$root/scripts/k8s/versions.env"

CLUSTER_NAME=hermes-e2e
E2E=$root/.e2e
export KWOK_WORKDIR=$E2E/kwok
CACHE=${HERMES_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hermes-cache}
log() { printf '[cluster-down %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

kwokctl=""
for c in "$E2E/bin/kwokctl" "$CACHE/kwok-$KWOK_VERSION/bin/kwokctl"; do
  if [[ -x $c ]]; then kwokctl=$c; break; fi
done

cluster_dir=$KWOK_WORKDIR/clusters/$CLUSTER_NAME

# The real node first: it deletes its pods and Node object through the API server.
node_rc=0
bash "$root/scripts/node/down.sh" || node_rc=$?

# The LeaderWorkerSet controller: the process its pid file names, if it still is ours.
lws_state=$E2E/lws
if [[ -f $lws_state/lws.pid ]]; then
  pid=$(tr -dc '0-9' < "$lws_state/lws.pid")
  if [[ -n $pid && -r /proc/$pid/cmdline ]] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF "$lws_state/config.yaml"; then
    log "stopping the LeaderWorkerSet controller (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
fi
rm -rf "$lws_state"
if [[ -n $kwokctl ]] && [[ -d $cluster_dir ]]; then
  log "deleting cluster $CLUSTER_NAME"
  # --kubeconfig: only our own file has a context to remove (the default is ~/.kube/config).
  "$kwokctl" delete cluster --name "$CLUSTER_NAME" --kubeconfig "$E2E/kubeconfig" >&2 ||
    log "kwokctl delete cluster failed; stopping its processes directly"
fi

# Whatever kwokctl could not stop: the processes it recorded in its pid files (ours only).
stop_pidfile() {
  local f=$1 pid
  [[ -f $f ]] || return 0
  pid=$(tr -dc '0-9' < "$f")
  [[ -n $pid ]] || return 0
  # Only stop it if it still is one of our cluster's components.
  if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF "$cluster_dir"; then
    log "stopping pid $pid ($(basename "$f" .pid))"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
}
if [[ -d $cluster_dir/pids ]]; then
  # Clients first, etcd last.
  for name in kwok-controller kube-scheduler kube-controller-manager kube-apiserver; do
    stop_pidfile "$cluster_dir/pids/$name.pid"
  done
  for f in "$cluster_dir"/pids/*.pid; do
    [[ $(basename "$f") == etcd.pid ]] || stop_pidfile "$f"
  done
  stop_pidfile "$cluster_dir/pids/etcd.pid"
fi

rm -rf "$KWOK_WORKDIR" "$E2E/kubeconfig" "$E2E/kubeconfig.tmp" "$E2E/kwokctl.yaml" "$E2E/kwokctl.yaml.want"
if ((node_rc != 0)); then
  log "ERROR: the real node was not removed completely (scripts/node/down.sh exited $node_rc, see above)"
  exit "$node_rc"
fi
log "cluster $CLUSTER_NAME is down; state removed"
