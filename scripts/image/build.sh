#!/usr/bin/env bash
# Build the project's container images with podman, offline from caches, and print their refs:
#
#   scripts/image/build.sh [all]      HERMES_IMAGE=localhost/hermes-cache:<hash>
#                                     VLLM_IMAGE=localhost/hermes-vllm-cpu:<hash>
#   scripts/image/build.sh hermes     HERMES_IMAGE=...   operator + sidecar (Dockerfile); also tagged
#                                                        localhost/hermes-cache:<pyproject version>
#   scripts/image/build.sh vllm       VLLM_IMAGE=...     vLLM CPU engine (Dockerfile.vllm-cpu); also
#                                                        tagged localhost/hermes-vllm-cpu:latest
#   scripts/image/build.sh base       HERMES_BASE_IMAGE=... and VLLM_BASE_IMAGE=...
#   scripts/image/build.sh context    CONTEXT=<dir>: the project image's build context (the repo's
#                                     sources + the verified bge model), for `docker build <dir>`
#
# stdout is only those shell assignments (eval "$(scripts/image/build.sh hermes)"); progress goes to
# stderr.
#
# Cached: an image's tag is a hash of everything that goes into it (its Dockerfile, its lock file,
# pyproject.toml, README.md, the operator/ and sidecar/ sources, the model checksums, the base image's
# id and this script); when an image with that tag exists nothing is built. Warm runs take a second.
#
# Nothing is pulled from a registry: the bases come from Debian's packages (base.sh), the bge model
# from scripts/models/install.sh (checked against its sha256 again in the Dockerfile), and the Python
# packages from a wheelhouse in the per-user cache, filled once per lock file by `pip download
# --require-hashes` and mounted read-only into the build, which then runs with --network none.
#
# Env: HERMES_CACHE_DIR   cache root (default ${XDG_CACHE_HOME:-~/.cache}/hermes-cache); wheelhouses in
#                         $HERMES_CACHE_DIR/wheelhouse, build logs in $HERMES_CACHE_DIR/images
#      CONTAINERS_CONF    podman settings (default scripts/image/containers.conf)
set -euo pipefail
SCRIPT_NAME=build
# shellcheck source=scripts/image/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

WHAT=${1:-all}
WHEELHOUSE_ROOT=$CACHE/wheelhouse
HERMES_NAME=localhost/hermes-cache
VLLM_NAME=localhost/hermes-vllm-cpu

need podman podman
mkdir -p "$IMAGE_CACHE" "$WHEELHOUSE_ROOT"

image_id() { podman image inspect --format '{{.Id}}' "$1"; }

# wheelhouse LOCK BASE_REF: a folder with every file LOCK pins, verified against its hashes; printed.
# Downloaded with the pip of the image's own Python (inside the base image), so the wheels match the
# interpreter they are installed into, whatever Python the host has. Filled once per lock content.
wheelhouse() {
    local lock=$1 base=$2 name dir start
    name=$(basename "$lock" .txt)-$(hash_inputs "$lock" </dev/null)
    dir=$WHEELHOUSE_ROOT/$name
    exec 7>"$WHEELHOUSE_ROOT/.$name.lock"
    flock 7
    if [[ ! -f $dir/.complete ]]; then
        start=$(date +%s)
        log "downloading the packages of $lock into $dir (once per lock file; the vLLM one is ~3 GB)"
        mkdir -p "$dir"
        # A changed lock mostly pins the same files: start from the previous wheelhouses of this lock
        # (hard links, no copies). pip checks each file found in the folder against the lock's hashes
        # and downloads it again on a mismatch, so a stale file cannot slip in.
        local old
        for old in "$WHEELHOUSE_ROOT/$(basename "$lock" .txt)"-*/; do
            [[ $old != "$dir/" && -f $old/.complete ]] || continue
            find "$old" -maxdepth 1 -type f \( -name '*.whl' -o -name '*.tar.gz' -o -name '*.zip' \) \
                -exec cp -ln -t "$dir" {} + 2>/dev/null || true
        done
        # --no-deps: the lock is complete; --require-hashes: every file is checked as it arrives.
        # Files already there are reused by pip, so an interrupted download resumes.
        # The host's CA bundle goes in too: where HTTPS goes through a proxy with its own CA (as on
        # these machines), Debian's bundle in the base image alone fails with CERTIFICATE_VERIFY_FAILED.
        # An index mirror set for the host's pip applies too. No SELinux relabelling (:Z) of host files
        # such as the CA bundle: labels are disabled for this one container instead.
        local ca=${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}} opts=() v
        [[ -f $ca ]] && opts+=(-v "$ca:/host-ca.crt:ro" -e PIP_CERT=/host-ca.crt)
        for v in PIP_INDEX_URL PIP_EXTRA_INDEX_URL; do
            [[ -n ${!v:-} ]] && opts+=(-e "$v")
        done
        if ! podman run --rm --network host --user 0 --security-opt label=disable "${opts[@]}" \
            -v "$REPO/$lock:/lock.txt:ro" -v "$dir:/wheels" "$base" \
            sh -c 'python3 -m venv /tmp/pip && /tmp/pip/bin/pip download --disable-pip-version-check \
                   --no-input --progress-bar off --no-deps --require-hashes -r /lock.txt -d /wheels' \
            >"$IMAGE_CACHE/$name.download.log" 2>&1; then
            tail -n 30 "$IMAGE_CACHE/$name.download.log" >&2
            die "downloading the packages of $lock failed (full log: $IMAGE_CACHE/$name.download.log); PyPI must be reachable for the first build"
        fi
        touch "$dir/.complete"
        log "wheelhouse $name: $(du -sh "$dir" | cut -f1) in $(elapsed "$start") s"
        # The older ones are superseded (what they share with this one stays, as hard links here).
        for old in "$WHEELHOUSE_ROOT/$(basename "$lock" .txt)"-*/; do
            if [[ $old != "$dir/" ]]; then
                rm -rf "$old" "$WHEELHOUSE_ROOT/.$(basename "$old").lock" "$IMAGE_CACHE/$(basename "$old").download.log"
            fi
        done
    fi
    exec 7>&-
    echo "$dir"
}

# podman_build LOG ARGS...: run podman build with its output in LOG; on failure show the tail.
podman_build() {
    local logfile=$1
    shift
    if ! podman build --pull=never "$@" >"$logfile" 2>&1; then
        tail -n 40 "$logfile" >&2
        die "podman build failed (full log: $logfile)"
    fi
}

# The project image's context: only what the Dockerfile copies, plus the verified model files (which
# live outside the repo, in the per-user model cache).
stage_context() {
    local dest=$1 models
    models=$(bash "$REPO/scripts/models/install.sh") || die "scripts/models/install.sh failed: the image bakes its bge model in"
    rm -rf "$dest"
    mkdir -p "$dest/requirements" "$dest/models/bge-small-en-v1.5-int8"
    (cd "$REPO" && tar -cf - --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' \
        Dockerfile .dockerignore pyproject.toml README.md LICENSE* operator sidecar 2>/dev/null) |
        tar -xf - -C "$dest" || true
    [[ -f $dest/Dockerfile && -d $dest/sidecar && -d $dest/operator ]] || die "staging the build context in $dest failed"
    cp "$REPO/requirements/runtime.txt" "$dest/requirements/"
    cp "$models/model.onnx" "$models/tokenizer.json" "$dest/models/bge-small-en-v1.5-int8/"
}

check_locks() {
    local f
    for f in "$@"; do
        [[ -f $REPO/$f ]] || die "$f is missing: the images install from the dependency lock (make lock)"
    done
}

build_hermes() {
    check_locks requirements/runtime.txt
    local base base_id models tag ref ctx wheels start
    base=$(bash "$IMAGE_DIR/base.sh" hermes)
    base_id=$(image_id "$base")
    models=$(bash "$REPO/scripts/models/install.sh") || die "scripts/models/install.sh failed"
    tag=$({
        echo "base $base_id"
        (cd "$models" && sha256sum model.onnx tokenizer.json)
    } | hash_inputs Dockerfile .dockerignore requirements/runtime.txt pyproject.toml README.md operator sidecar \
        scripts/image/build.sh)
    ref=$HERMES_NAME:$tag
    exec 6>"$IMAGE_CACHE/.hermes.lock"
    flock 6
    if ! image_exists "$ref"; then
        start=$(date +%s)
        wheels=$(wheelhouse requirements/runtime.txt "$base")
        ctx=$IMAGE_CACHE/context-hermes
        stage_context "$ctx"
        log "building $ref (log: $IMAGE_CACHE/hermes.build.log)"
        podman_build "$IMAGE_CACHE/hermes.build.log" --network none \
            --build-arg BASE_IMAGE="$base" --build-arg WHEELS=/wheels \
            -v "$wheels:/wheels:ro,Z" -t "$ref" "$ctx"
        log "built $ref in $(elapsed "$start") s, $(podman image inspect --format '{{.Size}}' "$ref" | numfmt --to=si)B"
    fi
    exec 6>&-
    # Also the project version's tag, the default sidecar image the operator renders
    # (render.DEFAULT_SIDECAR_IMAGE_REF); it moves to the newest build.
    local version
    version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO/pyproject.toml")
    if [[ -n $version ]]; then podman tag "$ref" "$HERMES_NAME:$version"; fi
    prune_old "$HERMES_NAME" "$ref"
    echo "HERMES_IMAGE=$ref"
}

# prune_old NAME REF: untag NAME's other content-hash tags (16 hex digits) and drop the layers no
# tag holds any more. Every edit of operator/ or sidecar/ makes a new 685 MB tag (a new vLLM lock, a
# new 7 GB one); without this a developer's disk fills up over a day of edits.
prune_old() {
    local name=$1 keep=$2 old
    while read -r old; do
        [[ $old == "$keep" || ! ${old##*:} =~ ^[0-9a-f]{16}$ ]] && continue
        podman rmi --force "$old" >/dev/null 2>&1 && log "removed the older build $old"
    done < <(podman images --format '{{.Repository}}:{{.Tag}}' "$name" 2>/dev/null)
    podman image prune --force >/dev/null 2>&1 || true
}

build_vllm() {
    check_locks requirements/vllm.txt
    local base base_id tag ref ctx wheels start
    base=$(bash "$IMAGE_DIR/base.sh" vllm)
    base_id=$(image_id "$base")
    tag=$(echo "base $base_id" | hash_inputs Dockerfile.vllm-cpu requirements/vllm.txt scripts/image/build.sh)
    ref=$VLLM_NAME:$tag
    exec 6>"$IMAGE_CACHE/.vllm.lock"
    flock 6
    if ! image_exists "$ref"; then
        start=$(date +%s)
        wheels=$(wheelhouse requirements/vllm.txt "$base")
        ctx=$IMAGE_CACHE/context-vllm
        rm -rf "$ctx"
        mkdir -p "$ctx/requirements"
        cp "$REPO/Dockerfile.vllm-cpu" "$ctx/Dockerfile"
        cp "$REPO/requirements/vllm.txt" "$ctx/requirements/"
        log "building $ref: installs ~6 GB, several minutes (log: $IMAGE_CACHE/vllm.build.log)"
        podman_build "$IMAGE_CACHE/vllm.build.log" --network none \
            --build-arg BASE_IMAGE="$base" --build-arg WHEELS=/wheels \
            -v "$wheels:/wheels:ro,Z" -t "$ref" "$ctx"
        log "built $ref in $(elapsed "$start") s, $(podman image inspect --format '{{.Size}}' "$ref" | numfmt --to=si)B"
    fi
    exec 6>&-
    # Also :latest, the tag examples/hermes-cpu.yaml names; it moves to the newest build.
    podman tag "$ref" "$VLLM_NAME:latest"
    prune_old "$VLLM_NAME" "$ref"
    echo "VLLM_IMAGE=$ref"
}

case $WHAT in
all)
    build_hermes
    build_vllm
    ;;
hermes) build_hermes ;;
vllm) build_vllm ;;
base)
    echo "HERMES_BASE_IMAGE=$(bash "$IMAGE_DIR/base.sh" hermes)"
    echo "VLLM_BASE_IMAGE=$(bash "$IMAGE_DIR/base.sh" vllm)"
    ;;
context)
    check_locks requirements/runtime.txt
    stage_context "$IMAGE_CACHE/context-hermes"
    echo "CONTEXT=$IMAGE_CACHE/context-hermes"
    ;;
*) die "unknown target '$WHAT': use all, hermes, vllm, base or context" ;;
esac
