#!/usr/bin/env bash
# Package the Endpoint Picker built by `scripts/k8s/build.sh epp` as a one-file image in podman's
# storage, for the real test node (nothing can be pulled from registry.k8s.io on our machines), and
# print its ref on stdout:
#
#   scripts/k8s/epp-image.sh     EPP_IMAGE=localhost/hermes-gie-epp:<hash of the binary>
#
# The image is the static binary (CGO off) at /epp as its entrypoint, like upstream's distroless
# image, and nothing else. Load it into the node with scripts/node/load-image.sh "$EPP_IMAGE".
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/../image/containers.conf}

eval "$("$here/build.sh" epp)"
bin=$EPP_BIN/epp
hash=$(sha256sum < "$bin" | cut -c1-16)
ref=localhost/hermes-gie-epp:$hash
if ! podman image exists "$ref"; then
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/hermes-epp-image.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/root/etc"
  cp "$bin" "$tmp/root/epp"
  printf 'root:x:0:0:root:/:/epp\nnonroot:x:65532:65532:nonroot:/:/epp\n' > "$tmp/root/etc/passwd"
  tar -C "$tmp/root" --numeric-owner --owner=0 --group=0 -cf "$tmp/rootfs.tar" .
  podman import --quiet --change 'ENTRYPOINT ["/epp"]' --change 'USER 65532:65532' "$tmp/rootfs.tar" "$ref" >/dev/null
  echo "[epp-image] built $ref from $bin" >&2
fi
printf 'EPP_IMAGE=%q\n' "$ref"
