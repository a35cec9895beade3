#!/usr/bin/env bash
# Copy podman images into the real test node's containerd (namespace k8s.io), where the kubelet
# finds them: pods then use the same `localhost/NAME:TAG` ref with `imagePullPolicy: IfNotPresent`
# or `Never` (nothing can be pulled from a registry on our machines).
#
#   scripts/node/load-image.sh REF [REF...]
#
# An image whose podman ID is already in containerd under that ref is skipped (the ID is kept as
# the containerd label hermes-cache.dev/podman-id). Prints what it did on stderr. Needs the node
# running (scripts/cluster-up.sh starts it).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($#)) || { echo "usage: scripts/node/load-image.sh REF [REF...]" >&2; exit 2; }
[[ -S $CONTAINERD_SOCK ]] && ctr_node version >/dev/null 2>&1 ||
  node_die "the node's containerd does not answer on $CONTAINERD_SOCK; start the cluster: make cluster-up"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hermes-load.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

for ref in "$@"; do
  id=$(podman image inspect --format '{{.Id}}' "$ref" 2>/dev/null) ||
    node_die "podman has no image $ref (podman images lists what it has; build it first)"
  have=$(ctr_node images ls "name==$ref" 2>/dev/null | awk 'NR > 1 {print $NF}')
  if [[ $have == *"hermes-cache.dev/podman-id=$id"* ]]; then
    node_log "load-image: $ref (${id:0:12}) is already in the node, skipped"
    continue
  fi
  t0=$(date +%s)
  podman save --quiet --format docker-archive -o "$tmp/image.tar" "$ref" >/dev/null
  ctr_node images import "$tmp/image.tar" >/dev/null ||
    node_die "ctr images import of $ref failed (see above)"
  rm -f "$tmp/image.tar"
  ctr_node images ls -q "name==$ref" | grep -qx "$ref" ||
    node_die "$ref is not in the node's containerd after the import (the archive named it differently?)"
  ctr_node images label "$ref" "hermes-cache.dev/podman-id=$id" >/dev/null
  node_log "load-image: $ref (${id:0:12}) loaded in $(($(date +%s) - t0))s"
done
