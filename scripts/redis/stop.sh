#!/usr/bin/env bash
# Stop the Redis started by scripts/redis/start.sh.
#
#   scripts/redis/stop.sh [PORT] [STATE_DIR]       defaults: 6399, .e2e/redis-<PORT>/ in the repo
#
# SIGTERM (Redis shuts down cleanly; nothing is saved with the start script's settings), SIGKILL after
# HERMES_REDIS_STOP_TIMEOUT seconds (default 20). Not running is not an error. Quiet on success.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PORT=${1:-6399}
DIR=${2:-$REPO/.e2e/redis-$PORT}
PIDFILE=$DIR/redis.pid

# shellcheck source=scripts/lib/proc.sh
source "$HERE/../lib/proc.sh" # running PID, cmdline_of PID

[[ -f $PIDFILE ]] || exit 0
pid=$(<"$PIDFILE")
if [[ $pid =~ ^[0-9]+$ ]] && running "$pid"; then
    # An exiting process (just SIGKILLed, say) has an empty command line: it is ours and going away.
    cmd=$(cmdline_of "$pid")
    [[ -z $cmd || $cmd == *redis* ]] || {
        echo "redis/stop: pid $pid from $PIDFILE is not a redis process; left alone" >&2
        exit 1
    }
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + ${HERMES_REDIS_STOP_TIMEOUT:-20}))
    while running "$pid"; do
        if ((SECONDS >= deadline)); then
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
            break
        fi
        sleep 0.05
    done
fi
rm -f "$PIDFILE"
