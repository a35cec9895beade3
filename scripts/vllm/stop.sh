#!/usr/bin/env bash
# Stop the vLLM server started by scripts/vllm/start.sh, with its engine-core child processes.
#
#   scripts/vllm/stop.sh [PORT] [STATE_DIR]        defaults: 8100, .e2e/vllm-<PORT>/ in the repo
#
# SIGTERM to the server's process group, SIGKILL after HERMES_VLLM_STOP_TIMEOUT seconds (default 30).
# Not running is not an error. Quiet on success.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PORT=${1:-8100}
DIR=${2:-$REPO/.e2e/vllm-$PORT}
PIDFILE=$DIR/vllm.pid

# shellcheck source=scripts/lib/proc.sh
source "$HERE/../lib/proc.sh" # running PID, cmdline_of PID
group_running() { # a live (non-zombie) process is left in process group $1
    local f line
    local -a st
    for f in /proc/[0-9]*/stat; do
        read -r line 2>/dev/null <"$f" || continue
        read -r -a st <<<"${line##*) }" # state ppid pgrp ...
        [[ ${st[2]} == "$1" && ${st[0]} != Z ]] && return 0
    done
    return 1
}

[[ -f $PIDFILE ]] || exit 0
pid=$(<"$PIDFILE")
if [[ $pid =~ ^[0-9]+$ ]] && group_running "$pid"; then
    # An exiting process (just SIGKILLed, say) has an empty command line: it is ours and going away.
    cmd=$(cmdline_of "$pid")
    if running "$pid" && [[ -n $cmd && ${cmd,,} != *vllm* ]]; then
        echo "vllm/stop: pid $pid from $PIDFILE is not a vLLM server; left alone" >&2
        exit 1
    fi
    kill -TERM -- "-$pid" 2>/dev/null || true
    deadline=$((SECONDS + ${HERMES_VLLM_STOP_TIMEOUT:-30}))
    while group_running "$pid"; do
        if ((SECONDS >= deadline)); then
            kill -KILL -- "-$pid" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.2
    done
fi
rm -f "$PIDFILE"
