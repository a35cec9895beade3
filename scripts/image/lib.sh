# shellcheck shell=bash
# Shared by scripts/image/*.sh (sourced, not run): paths, the podman settings, logging and hashing.

IMAGE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$IMAGE_DIR/../.." && pwd)
CACHE=${HERMES_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hermes-cache}
IMAGE_CACHE=$CACHE/images

# The project's podman settings (runc, cgroupfs, ulimits below the host's): without them podman fails
# on these machines. A caller may point CONTAINERS_CONF elsewhere on purpose.
export CONTAINERS_CONF=${CONTAINERS_CONF:-$IMAGE_DIR/containers.conf}

log() { echo "image/${SCRIPT_NAME:-lib}: $*" >&2; }
die() { log "error: $*"; exit 1; }

need() { # need COMMAND DEBIAN_PACKAGE: fail early, naming the package that brings it
    command -v "$1" >/dev/null 2>&1 || die "'$1' is not installed: apt-get install $2 (scripts/install-system.sh)"
}

# hash_inputs PATH...: one short hash over the named files' contents and relative paths (directories
# walked in sorted order, caches and bytecode left out) plus whatever is piped on stdin. Stable across
# checkouts: only the content and the names inside the repo count, not mtimes or absolute paths.
hash_inputs() {
    local p
    for p in "$@"; do # checked first: a failure inside the pipe below would still print a hash
        [[ -e $REPO/$p ]] || die "input '$p' is missing from $REPO"
    done
    {
        cat
        for p in "$@"; do
            if [[ -d $REPO/$p ]]; then
                (cd "$REPO" && find "$p" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' \
                    ! -path '*.egg-info/*' -print0 | LC_ALL=C sort -z | xargs -0r sha256sum)
            else
                (cd "$REPO" && sha256sum "$p")
            fi
        done
    } | sha256sum | cut -c1-16
}

image_exists() { podman image exists "$1" 2>/dev/null; }

# elapsed START: seconds since START (from `date +%s`)
elapsed() { echo $(($(date +%s) - $1)); }
