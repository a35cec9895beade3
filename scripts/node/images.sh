#!/usr/bin/env bash
# Build (or reuse) the small local images of the real test node, in podman's storage, and print the
# ref on stdout. Nothing can be pulled from a registry on our machines, so they are made from the
# project's files and Debian's packages, tagged with a hash of their inputs (a rebuild happens only
# when an input changes):
#
#   scripts/node/images.sh pause     localhost/hermes-pause:<hash>    the pods' sandbox image: the
#                                    static Go program scripts/node/pause/main.go, nothing else
#   scripts/node/images.sh busybox   localhost/hermes-busybox:<hash>  Debian's busybox-static with
#                                    its applets linked into /bin (sh, httpd, wget, nc, ...): the
#                                    e2e tests' tiny workload image
#
# Load them into the node with scripts/node/load-image.sh (cluster-up does it for pause).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

what=${1:?usage: scripts/node/images.sh pause|busybox}
command -v podman >/dev/null || node_die "podman is not installed: run scripts/install-system.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hermes-node-image.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# import ROOTFS_DIR REF CHANGE...: one-layer image from a directory
import_dir() {
  local dir=$1 ref=$2; shift 2
  local changes=() c
  for c in "$@"; do changes+=(--change "$c"); done
  tar -C "$dir" --numeric-owner --owner=0 --group=0 -cf "$tmp/rootfs.tar" .
  podman import --quiet "${changes[@]}" "$tmp/rootfs.tar" "$ref" >/dev/null
}

case "$what" in
  pause)
    src=$NODE_SCRIPTS/pause/main.go
    hash=$( { go version; sha256sum < "$src"; } | sha256sum | cut -c1-16)
    ref=localhost/hermes-pause:$hash
    if ! podman image exists "$ref"; then
      node_log "building $ref from scripts/node/pause/main.go"
      mkdir -p "$tmp/root"
      (cd "$tmp" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false \
        go build -trimpath -ldflags "-s -w" -o "$tmp/root/pause" "$src")
      import_dir "$tmp/root" "$ref" 'ENTRYPOINT ["/pause"]'
    fi
    ;;
  busybox)
    bb=/bin/busybox
    [[ -x $bb ]] ||
      node_die "$bb is missing or not static: apt-get install busybox-static (scripts/install-system.sh)"
    hash=$( { sha256sum < "$bb"; sha256sum < "${BASH_SOURCE[0]}"; } | sha256sum | cut -c1-16)
    ref=localhost/hermes-busybox:$hash
    if ! podman image exists "$ref"; then
      node_log "building $ref from $bb"
      mkdir -p "$tmp/root/bin" "$tmp/root/tmp" "$tmp/root/etc" "$tmp/root/www"
      chmod 1777 "$tmp/root/tmp"
      cp "$bb" "$tmp/root/bin/busybox"
      for applet in $("$bb" --list); do
        [[ $applet == busybox ]] || ln -s busybox "$tmp/root/bin/$applet"
      done
      printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$tmp/root/etc/passwd"
      printf 'root:x:0:\nnogroup:x:65534:\n' > "$tmp/root/etc/group"
      import_dir "$tmp/root" "$ref" 'ENV PATH=/bin' 'CMD ["/bin/sh"]'
    fi
    ;;
  *) node_die "unknown image '$what' (pause or busybox)" ;;
esac
echo "$ref"
