#!/usr/bin/env bash
# Start Redis with vector search (RediSearch) and RedisJSON on 127.0.0.1, installing it first if needed.
#
#   scripts/redis/start.sh [PORT] [STATE_DIR]      defaults: 6399, .e2e/redis-<PORT>/ in the repo
#
# Runs in the background (own session); pid file, log and working dir in STATE_DIR. Returns once PING and FT._LIST answer.
# Calling it again while that server runs is a no-op. Quiet on success.
#
# Env: HERMES_REDIS_MAXMEMORY (e.g. 256mb; default 0 = no limit),
#      HERMES_REDIS_MAXMEMORY_POLICY (default noeviction),
#      HERMES_REDIS_ARGS (more redis-server options, e.g. "--save 60 1"),
#      HERMES_REDIS_START_TIMEOUT (seconds, default 60).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PORT=${1:-6399}
DIR=${2:-$REPO/.e2e/redis-$PORT}
[[ $PORT =~ ^[0-9]+$ ]] || { echo "redis/start: bad port '$PORT'" >&2; exit 2; }

die() { echo "redis/start: $*" >&2; exit 1; }

WRAPPER=$("$HERE/install.sh") || die "install failed"
BIN=$(dirname "$WRAPPER")
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
PIDFILE=$DIR/redis.pid
LOG=$DIR/redis.log
CLI=("$BIN/redis-cli" -h 127.0.0.1 -p "$PORT")

ready() { # PING answers and the search module is loaded
    local out
    [[ $("${CLI[@]}" PING 2>/dev/null) == PONG ]] && out=$("${CLI[@]}" FT._LIST 2>&1) && [[ $out != *ERR* ]]
}
# shellcheck source=scripts/lib/proc.sh
source "$HERE/../lib/proc.sh" # running PID, cmdline_of PID
our_pid() { # pid from the pid file if that process is alive
    local pid
    [[ -f $PIDFILE ]] && pid=$(<"$PIDFILE") && [[ $pid =~ ^[0-9]+$ ]] && running "$pid" && echo "$pid"
}

if pid=$(our_pid); then
    ready && exit 0
    die "redis (pid $pid, $PIDFILE) runs but does not answer on 127.0.0.1:$PORT; see $LOG or run scripts/redis/stop.sh $PORT"
fi
if "${CLI[@]}" PING >/dev/null 2>&1; then
    die "127.0.0.1:$PORT is already served by a process that is not ours (no live pid in $PIDFILE)"
fi

# In the background in its own session, not --daemonize: the pid is known at once and a failed start
# is seen at once. stdio goes to the log so that callers capturing our output are not held open.
# The inner shell writes its own pid and execs the server (the wrappers exec too), so the pid stays.
rm -f "$PIDFILE"
# shellcheck disable=SC2016,SC2086 # $$ belongs to the inner shell; HERMES_REDIS_ARGS is a list of options
setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PIDFILE" "$WRAPPER" \
    --bind 127.0.0.1 --port "$PORT" \
    --daemonize no --dir "$DIR" \
    --save "" --appendonly no \
    --maxmemory "${HERMES_REDIS_MAXMEMORY:-0}" \
    --maxmemory-policy "${HERMES_REDIS_MAXMEMORY_POLICY:-noeviction}" \
    ${HERMES_REDIS_ARGS:-} </dev/null >>"$LOG" 2>&1 &
for _ in $(seq 50); do [[ -s $PIDFILE ]] && break; sleep 0.1; done

deadline=$((SECONDS + ${HERMES_REDIS_START_TIMEOUT:-60}))
until ready; do
    if ((SECONDS >= deadline)); then
        tail -n 20 "$LOG" >&2
        die "redis on 127.0.0.1:$PORT not ready after ${HERMES_REDIS_START_TIMEOUT:-60}s (log: $LOG)"
    fi
    if ! our_pid >/dev/null; then
        tail -n 20 "$LOG" >&2
        die "redis-server exited during start-up (log: $LOG)"
    fi
    sleep 0.1
done
