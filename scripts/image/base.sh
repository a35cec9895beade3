#!/usr/bin/env bash
# Build a base image from Debian's packages, for machines that reach no container registry:
#
#   scripts/image/base.sh [hermes|vllm]   prints the ref on stdout, e.g. localhost/hermes-base:3f2a...
#
#   hermes  Debian bookworm minbase + python3, python3-venv, ca-certificates   (the project image)
#   vllm    the same + g++ and python3-dev (torch.compile's inductor compiles C++ kernels against
#           Python.h when vLLM starts on the CPU) and libnuma1                 (the vLLM CPU image)
#
# Debian bookworm's python3 is 3.11, as in the public python:3.11-slim-bookworm the Dockerfiles
# default to, so the same locked wheels install in both.
#
# Made with mmdebstrap (~70 s, no root filesystem tricks needed), imported with `podman import`.
# Cached: the tag is a hash of the suite, the package list and this script, so a second call only
# checks that the image exists and prints the same ref. HERMES_BASE_MIRROR overrides the Debian mirror
# (it is not part of the hash: any mirror serves the same suite).
set -euo pipefail
SCRIPT_NAME=base
# shellcheck source=scripts/image/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FLAVOR=${1:-hermes}
SUITE=bookworm
PACKAGES=(python3 python3-venv ca-certificates)
case $FLAVOR in
hermes) NAME=localhost/hermes-base ;;
vllm)
    NAME=localhost/hermes-base-vllm
    PACKAGES+=(g++ python3-dev libnuma1)
    ;;
*) die "unknown base flavor '$FLAVOR': use hermes or vllm" ;;
esac

TAG=$(printf '%s\n' "$SUITE" "${PACKAGES[@]}" | hash_inputs scripts/image/base.sh)
REF=$NAME:$TAG

need podman podman
mkdir -p "$IMAGE_CACHE"
exec 8>"$IMAGE_CACHE/.base-$FLAVOR.lock"
flock 8 # parallel callers (test sessions, make) build it once

if image_exists "$REF"; then
    echo "$REF"
    exit 0
fi

need mmdebstrap mmdebstrap
start=$(date +%s)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hermes-base.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
log "building $REF from Debian $SUITE: ${PACKAGES[*]} (about a minute)"
include=$(IFS=,; echo "${PACKAGES[*]}")
mirror=()
[[ -n ${HERMES_BASE_MIRROR:-} ]] && mirror=("$HERMES_BASE_MIRROR")
# minbase: Essential packages + apt; --aptopt keeps recommends out like the slim images do;
# the dpkg filters drop docs and man pages (tens of MB nobody reads in a container).
if ! mmdebstrap --variant=minbase --include="$include" \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "$SUITE" "$WORK/rootfs.tar" "${mirror[@]}" >"$WORK/mmdebstrap.log" 2>&1; then
    tail -n 30 "$WORK/mmdebstrap.log" >&2
    die "mmdebstrap failed (above); it needs Debian's package mirror (or set HERMES_BASE_MIRROR)"
fi
# `podman import` keeps no environment: give the image the PATH and locale a Debian image has.
podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --message "Debian $SUITE minbase + ${PACKAGES[*]} (scripts/image/base.sh)" \
    "$WORK/rootfs.tar" "$REF" >/dev/null ||
    die "podman import of $WORK/rootfs.tar failed; check podman with: CONTAINERS_CONF=$CONTAINERS_CONF podman info"
log "built $REF in $(elapsed "$start") s"
echo "$REF"
