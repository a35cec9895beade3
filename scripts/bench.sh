#!/usr/bin/env bash
# Run the benchmarks and regenerate docs/benchmarks.md and docs/bench/*.png from nothing.
#
#   scripts/bench.sh full                 every measurement at the sizes the report quotes (make bench)
#   scripts/bench.sh quick                small sizes, a few minutes once everything is installed (make bench-quick)
#   scripts/bench.sh full lookup,switch   only these measurements (the others keep their last JSON)
#
# Measurements: planner quality verifier verifier-cost pair-verifier pair-verifier-mined lookup sidecar prefix switch operator soak plans
# trust-groups routing (bench/run.py).
# Starts the real services the chosen measurements need through the project's own scripts, on ports
# of its own so a test run next door is not disturbed, and stops what it started on exit:
#   Redis with vector search   scripts/redis/start.sh  127.0.0.1:${HERMES_BENCH_REDIS_PORT:-6479}
#   vLLM on the CPU            scripts/vllm/start.sh   127.0.0.1:${HERMES_BENCH_VLLM_PORT:-8179}, with the
#                              arguments `hermes-cache plan bench/policies/tiny-cpu.yaml` renders
#   control plane (kwok)       scripts/cluster-up.sh   enough fake GPU nodes for the largest policy count
#                              (routing: two vLLM pods of a routed policy on its real node, bench/extproc.py)
# Results: bench/out/*.json (git-ignored), then docs/benchmarks.md and docs/bench/*.png.
# A trial run that must not replace the report: HERMES_BENCH_OUT=DIR HERMES_BENCH_DOCS=DIR, plus
# HERMES_BENCH_{REDIS,VLLM}_PORT and HERMES_BENCH_{SIDECAR,SWITCH,PREFIX,SOAK}_PORT if another run is up.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/.venv/bin
mode=${1:-quick}
only=${2:-}
case "$mode" in quick | full) ;; *)
    echo "usage: $0 [quick|full] [measurement,...]" >&2
    exit 2
    ;;
esac
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

[[ -x $BIN/python ]] || { echo "no .venv: run 'make install' first" >&2; exit 1; }
# The bench extra (matplotlib, gptcache and what it needs) is kept out of `make install`.
if ! "$BIN/python" -c 'import matplotlib, gptcache, faiss, sqlalchemy' 2>/dev/null; then
    log "installing the bench extra from the lock: requirements/bench.txt"
    "$BIN/python" -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r requirements/bench.txt
fi

all="planner quality verifier verifier-cost pair-verifier pair-verifier-mined lookup sidecar prefix switch operator soak plans trust-groups routing"
wanted=${only//,/ }
wanted=${wanted:-$all}
want() { [[ " $wanted " == *" $1 "* ]]; }
need_redis=0 need_vllm=0 need_cluster=0
for m in quality lookup sidecar prefix switch soak trust-groups; do want "$m" && need_redis=1; done
for m in planner verifier-cost sidecar prefix switch soak trust-groups; do want "$m" && need_vllm=1; done
want operator && need_cluster=1
want routing && need_cluster=1

STATE=$ROOT/.e2e/bench
REDIS_PORT=${HERMES_BENCH_REDIS_PORT:-6479}
VLLM_PORT=${HERMES_BENCH_VLLM_PORT:-8179}
mkdir -p "$STATE"
started=()
cleanup() {
    local rc=$?
    for s in "${started[@]}"; do
        case "$s" in
        vllm) log "stopping vLLM"; bash scripts/vllm/stop.sh "$VLLM_PORT" "$STATE/vllm-$VLLM_PORT" || true ;;
        redis) log "stopping Redis"; bash scripts/redis/stop.sh "$REDIS_PORT" "$STATE/redis-$REDIS_PORT" || true ;;
        cluster) log "stopping the control plane"; bash scripts/cluster-down.sh || true ;;
        esac
    done
    exit "$rc"
}
trap cleanup EXIT INT TERM

if ((need_redis)); then
    log "starting Redis on 127.0.0.1:$REDIS_PORT"
    # A fresh server per run: nothing is saved (start.sh runs without persistence).
    bash scripts/redis/stop.sh "$REDIS_PORT" "$STATE/redis-$REDIS_PORT" || true
    bash scripts/redis/start.sh "$REDIS_PORT" "$STATE/redis-$REDIS_PORT"
    started+=(redis)
    export HERMES_BENCH_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
fi

if ((need_vllm)); then
    args=$("$BIN/python" -m bench.services vllm-args bench/policies/tiny-cpu.yaml)
    log "starting vLLM on 127.0.0.1:$VLLM_PORT with the operator's arguments: $args"
    bash scripts/vllm/stop.sh "$VLLM_PORT" "$STATE/vllm-$VLLM_PORT" || true
    export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
    HERMES_VLLM_ARGS="$args" bash scripts/vllm/start.sh "$VLLM_PORT" "$STATE/vllm-$VLLM_PORT"
    started+=(vllm)
    export HERMES_BENCH_VLLM_URL=http://127.0.0.1:$VLLM_PORT
    export HERMES_BENCH_VLLM_LOG=$STATE/vllm-$VLLM_PORT/vllm.log
    # the model folder start.sh served (its log names it), for the planner's config.json check
    model=$(sed -n 's/^==== .* scripts\/vllm\/start.sh [0-9]*: model //p' "$HERMES_BENCH_VLLM_LOG" | tail -n 1)
    export HERMES_BENCH_VLLM_MODEL=$model
fi

if ((need_cluster)); then
    kubeconfig=$ROOT/.e2e/kubeconfig
    running=0
    if [[ -s $kubeconfig && -x $ROOT/.e2e/bin/kubectl ]] &&
        "$ROOT/.e2e/bin/kubectl" --kubeconfig "$kubeconfig" get --raw /readyz --request-timeout=5s >/dev/null 2>&1; then
        running=1
    fi
    # 8 fake GPUs per node, two node types: enough nodes for one GPU per policy at the largest size.
    max=100
    [[ $mode == full ]] && max=1000
    want operator || max=0 # routing alone: the real node and cluster-up's default fake nodes
    nodes=$(((max + 15) / 16 + 1))
    ((max)) || nodes=${HERMES_E2E_NODES_PER_TYPE:-4}
    log "control plane: $( ((running)) && echo reusing the running one || echo starting it), $((2 * nodes)) fake GPU nodes"
    HERMES_E2E_NODES_PER_TYPE=$nodes HERMES_CLUSTER_CHECK=0 bash scripts/cluster-up.sh
    ((running)) || started+=(cluster)
    export HERMES_BENCH_KUBECONFIG=$kubeconfig
fi

"$BIN/python" -m bench.run "--$mode" ${only:+--only "$only"}
