#!/usr/bin/env bash
# Build (or reuse) the binaries of the local Kubernetes test cluster from Go modules.
#
# Nothing prebuilt can be downloaded on our machines, so every component is compiled from its
# Go module through the module proxy, with the installed Go (GOTOOLCHAIN=local, CGO_ENABLED=0),
# and cached per user and per version:
#
#   $CACHE/k8s-<v>/bin   kube-apiserver kube-controller-manager kube-scheduler kubectl
#   $CACHE/k8s-node-<v>/bin  kubelet kube-proxy (the real node, scripts/node/; its own component so
#                        that adding it left the control plane's cache valid)
#   $CACHE/etcd-<v>/bin  etcd
#   $CACHE/kwok-<v>/bin  kwok kwokctl
#   $CACHE/helm-<v>/bin  helm
#   $CACHE/lws-<v>/bin   lws-controller (sigs.k8s.io/lws/cmd), and lws-<v>/config: upstream's CRD and
#                        webhook kustomizations from the same module, applied by cluster-up
#   $CACHE/gie-epp-<v>/bin  epp (the Endpoint Picker, sigs.k8s.io/gateway-api-inference-extension/cmd/epp)
#                        and gie-epp-<v>/bin/crds: the InferencePool CRD of the same module. Only when
#                        asked for (`build.sh epp`): it is not part of the default set.
#
# with CACHE=${HERMES_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hermes-cache}. A cached binary
# is reused when it runs and reports the pinned version (scripts/k8s/versions.env).
#
# stdout: only shell assignments (of the components asked for), for `eval "$(scripts/k8s/build.sh)"`:
#   K8S_BIN=... NODE_BIN=... ETCD_BIN=... KWOK_BIN=... HELM_BIN=... LWS_BIN=... EPP_BIN=...
# stderr: progress and timings. Options: --force (rebuild even if cached), --jobs N (components
# built at once; default 2 when >= 8 GiB memory is free, else 1). Positional arguments pick
# components (kubernetes node etcd kwok helm lws; default all), e.g. `build.sh helm` for chart tests.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

force=0
jobs=""
want=()
while (($#)); do
  case "$1" in
    --force) force=1 ;;
    --jobs) jobs=$2; shift ;;
    -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}"; exit 0 ;;
    kubernetes|node|etcd|kwok|helm|lws|epp) want+=("$1") ;;
    *) echo "build.sh: unknown argument $1 (components: kubernetes node etcd kwok helm lws epp)" >&2; exit 2 ;;
  esac
  shift
done
((${#want[@]})) || want=(kubernetes node etcd kwok helm lws)
wanted() { [[ " ${want[*]} " == *" $1 "* ]]; }

CACHE=${HERMES_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hermes-cache}
K8S_DIR=$CACHE/k8s-$KUBE_VERSION
NODE_DIR=$CACHE/k8s-node-$KUBE_VERSION
ETCD_DIR=$CACHE/etcd-$ETCD_VERSION
KWOK_DIR=$CACHE/kwok-$KWOK_VERSION
HELM_DIR=$CACHE/helm-$HELM_VERSION
LWS_DIR=$CACHE/lws-$LWS_VERSION
EPP_DIR=$CACHE/gie-epp-$GIE_VERSION
mkdir -p "$CACHE"

export GOTOOLCHAIN=local CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
GO_P=${HERMES_GO_P:-2}   # go build -p: 2 cores on our machines

log() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
now() { date +%s; }

if [[ -z "$jobs" ]]; then
  avail_kb=$(awk '/MemAvailable/ {print $2}' /proc/meminfo 2>/dev/null || echo 0)
  # Linking kube-apiserver takes ~2-3 GiB; two builds at once need ~6-8 GiB.
  if ((avail_kb >= 8 * 1024 * 1024)); then jobs=2; else jobs=1; fi
fi

# ---------------------------------------------------------------- version checks (reuse)
# Output is captured before matching: `cmd | grep -q` can kill cmd with SIGPIPE and, under
# pipefail, report a mismatch at random.
reports() { # binary expected-substring args...
  local bin=$1 want=$2 out; shift 2
  [[ -x $bin ]] || return 1
  out=$("$bin" "$@" 2>/dev/null) || return 1
  [[ $out == *"$want"* ]]
}
k8s_ok() {
  local b=$K8S_DIR/bin c
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    reports "$b/$c" "Kubernetes $KUBE_VERSION" --version || return 1
  done
  reports "$b/kubectl" "\"gitVersion\": \"$KUBE_VERSION\"" version --client -o json
}
node_ok() {
  local b=$NODE_DIR/bin c
  for c in kubelet kube-proxy; do
    reports "$b/$c" "Kubernetes $KUBE_VERSION" --version || return 1
  done
}
etcd_ok() { reports "$ETCD_DIR/bin/etcd" "etcd Version: ${ETCD_VERSION#v}"$'\n' --version; }
kwok_ok() {
  reports "$KWOK_DIR/bin/kwok" "kwok version $KWOK_VERSION " --version &&
    reports "$KWOK_DIR/bin/kwokctl" "kwokctl version $KWOK_VERSION " --version
}
# .k8s-stamped marks a helm built with the Kubernetes version stamps below (older caches lack them).
helm_ok() {
  reports "$HELM_DIR/bin/helm" "<$HELM_VERSION>" version --template '<{{.Version}}>' &&
    [[ -f $HELM_DIR/bin/.k8s-stamped ]]
}

lws_ok() {
  reports "$LWS_DIR/bin/lws-controller" "Version: $LWS_VERSION"$'\n' --version &&
    [[ -f $LWS_DIR/bin/config/crd/bases/leaderworkerset.x-k8s.io_leaderworkersets.yaml ]]
}

# The EPP has no --version flag: the module version Go recorded in the binary, and the CRD beside it.
epp_ok() {
  local out
  [[ -x $EPP_DIR/bin/epp ]] || return 1
  out=$(go version -m "$EPP_DIR/bin/epp" 2>/dev/null) || return 1
  [[ $out == *$'\tsigs.k8s.io/gateway-api-inference-extension\t'"$GIE_VERSION"* ]] &&
    [[ -f $EPP_DIR/bin/crds/inference.networking.k8s.io_inferencepools.yaml ]]
}

# ---------------------------------------------------------------- builders
# Each builder writes into $dir/bin.tmp and renames it to $dir/bin only when every binary is
# built and reports the right version, so an interrupted build never leaves a half cache.
finish() { # dir okfn
  local dir=$1 okfn=$2
  rm -rf "$dir/bin.old"
  [[ -d $dir/bin ]] && mv "$dir/bin" "$dir/bin.old"
  mv "$dir/bin.tmp" "$dir/bin"
  rm -rf "$dir/bin.old"
  if ! "$okfn"; then log "ERROR: binaries in $dir/bin do not report the expected version"; return 1; fi
}

# Builds commands of k8s.io/kubernetes (cmd/<name>) into $dir/bin.tmp from a wrapper module in
# $dir/src (scripts/k8s/gen-wrapper-gomod.sh), stamped with the release version as upstream's
# build does. The control plane and the node have their own wrapper copies (so two builds never
# write one go.sum) but share Go's build cache.
build_kube_cmds() { # dir cmd...
  local dir=$1 src=$1/src; shift
  mkdir -p "$src"; rm -rf "$dir/bin.tmp"; mkdir -p "$dir/bin.tmp"
  bash "$here/gen-wrapper-gomod.sh" "$KUBE_VERSION" > "$src/go.mod.new"
  if ! cmp -s "$src/go.mod.new" "$src/go.mod.in" 2>/dev/null; then
    cp "$src/go.mod.new" "$src/go.mod"; cp "$src/go.mod.new" "$src/go.mod.in"; rm -f "$src/go.sum"
  fi
  rm -f "$src/go.mod.new"
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  local ld="-s -w" key val pkg
  local build_date
  build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  for kv in "gitVersion=$KUBE_VERSION" "gitMajor=1" "gitMinor=$minor" "gitTreeState=clean" \
            "gitCommit=" "buildDate=$build_date"; do
    key=${kv%%=*}; val=${kv#*=}
    [[ -n $val ]] || continue
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld+=" -X $pkg.$key=$val"
    done
  done
  local pkgs=() c
  for c in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  (
    cd "$src"
    # -mod=mod: record the sums of exactly the modules these commands need (no `go mod tidy`:
    # no Go file of the wrapper imports them).
    go build -mod=mod -p "$GO_P" -trimpath -tags selinux,notest,grpcnotrace \
      -ldflags "$ld" -o "$dir/bin.tmp/" "${pkgs[@]}"
  )
}

build_k8s() {
  build_kube_cmds "$K8S_DIR" kube-apiserver kube-controller-manager kube-scheduler kubectl
  finish "$K8S_DIR" k8s_ok
}

build_node() {
  build_kube_cmds "$NODE_DIR" kubelet kube-proxy
  finish "$NODE_DIR" node_ok
}

build_etcd() {
  local dir=$ETCD_DIR src=$ETCD_DIR/src
  mkdir -p "$src"; rm -rf "$dir/bin.tmp"; mkdir -p "$dir/bin.tmp"
  (
    cd "$src"
    # Wrapper module: etcd's own go.mod replaces its sibling modules with ../api etc., which
    # `go install ...@version` refuses; as a dependency those replace lines are ignored.
    [[ -f go.mod ]] || go mod init hermes-cache.local/etcd-build >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
    go build -mod=mod -p "$GO_P" -trimpath \
      -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION" \
      -o "$dir/bin.tmp/etcd" go.etcd.io/etcd/server/v3
  )
  finish "$dir" etcd_ok
}

build_kwok() {
  local dir=$KWOK_DIR
  rm -rf "$dir/bin.tmp"; mkdir -p "$dir/bin.tmp"
  # kwok's version (pkg/consts.Version) is already the release's own in the tagged source.
  local ld="-s -w"
  GOBIN="$dir/bin.tmp" go install -p "$GO_P" -trimpath -ldflags "$ld" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
  finish "$dir" kwok_ok
}

build_helm() {
  local dir=$HELM_DIR
  rm -rf "$dir/bin.tmp"; mkdir -p "$dir/bin.tmp"
  local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  # As helm's own Makefile does: stamp the Kubernetes version of its client-go, or `helm template`
  # and `helm lint` assume Kubernetes 1.20 and refuse charts that require a newer one.
  local gomod minor
  gomod=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  minor=$(sed -n 's#^[[:space:]]*k8s.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$gomod" | head -n 1)
  [[ -n $minor ]] || { log "ERROR: no k8s.io/client-go version in $gomod"; return 1; }
  local pkg
  for pkg in chartutil lint/rules; do
    ld+=" -X helm.sh/helm/v3/pkg/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/$pkg.k8sVersionMinor=$minor"
  done
  GOBIN="$dir/bin.tmp" go install -p "$GO_P" -trimpath -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  echo "1.$minor" > "$dir/bin.tmp/.k8s-stamped"
  finish "$dir" helm_ok
}

build_lws() {
  local dir=$LWS_DIR src=$LWS_DIR/src moddir
  mkdir -p "$src"; rm -rf "$dir/bin.tmp"; mkdir -p "$dir/bin.tmp"
  (
    cd "$src"
    # A wrapper module, as for etcd: `go install sigs.k8s.io/lws/cmd@v` asks the proxy for the
    # module's version list (deprecation check), which the proxy refuses here; a pinned require
    # needs only the tagged module.
    printf 'module hermes-cache.local/lws-build\n\ngo 1.26.0\n\nrequire sigs.k8s.io/lws %s\n' "$LWS_VERSION" > go.mod
    rm -f go.sum
    go build -mod=mod -p "$GO_P" -trimpath \
      -ldflags "-s -w -X sigs.k8s.io/lws/pkg/version.GitVersion=$LWS_VERSION" \
      -o "$dir/bin.tmp/lws-controller" sigs.k8s.io/lws/cmd
    # The CRD and webhook manifests of the same tag (kustomizations), for scripts/cluster-up.sh.
    moddir=$(go mod download -json "sigs.k8s.io/lws@$LWS_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [[ -d $moddir/config ]] || { log "ERROR: no config/ in sigs.k8s.io/lws@$LWS_VERSION ($moddir)"; exit 1; }
    cp -r "$moddir/config" "$dir/bin.tmp/config"
    chmod -R u+w "$dir/bin.tmp/config"
  )
  finish "$dir" lws_ok
}

build_epp() {
  local dir=$EPP_DIR src=$EPP_DIR/src moddir sha
  mkdir -p "$src"; rm -rf "$dir/bin.tmp"; mkdir -p "$dir/bin.tmp/crds"
  (
    cd "$src"
    # A wrapper module, as for lws (the proxy refuses the version list `go install m@v` asks for).
    printf 'module hermes-cache.local/epp-build\n\ngo 1.26.0\n\nrequire sigs.k8s.io/gateway-api-inference-extension %s\n' \
      "$GIE_VERSION" > go.mod
    rm -f go.sum
    # The commit of the tag, as upstream's Dockerfile stamps it (the binary logs it at start).
    sha=$(go mod download -json "sigs.k8s.io/gateway-api-inference-extension@$GIE_VERSION" |
      sed -n 's/^[[:space:]]*"Hash": "\(.*\)",\{0,1\}$/\1/p' | head -n 1)
    moddir=$(go mod download -json "sigs.k8s.io/gateway-api-inference-extension@$GIE_VERSION" |
      sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    local v=sigs.k8s.io/gateway-api-inference-extension/version
    go build -mod=mod -p "$GO_P" -trimpath \
      -ldflags "-s -w -X $v.CommitSHA=$sha -X $v.BuildRef=$GIE_VERSION" \
      -o "$dir/bin.tmp/epp" sigs.k8s.io/gateway-api-inference-extension/cmd/epp
    # The InferencePool CRD of the same tag (scripts/k8s/gie-crds.sh and the chart's copy).
    cp "$moddir/config/crd/bases/inference.networking.k8s.io_inferencepools.yaml" "$dir/bin.tmp/crds/"
    chmod -R u+w "$dir/bin.tmp/crds"
  )
  finish "$dir" epp_ok
}

# Runs one component: reuse if cached, else build under a lock, with timing.
run_component() { # name okfn buildfn dir
  local name=$1 okfn=$2 buildfn=$3 dir=$4 t0 rc=0
  mkdir -p "$dir"
  exec {lockfd}>"$dir/.lock"
  if ! flock -n "$lockfd"; then
    log "$name: another build holds $dir/.lock, waiting"
    flock "$lockfd"
  fi
  if ((force == 0)) && "$okfn"; then
    log "$name: reusing $dir/bin"
    return 0
  fi
  t0=$(now)
  log "$name: building into $dir/bin"
  "$buildfn" >&2 || rc=$?
  if ((rc != 0)); then log "$name: BUILD FAILED (exit $rc) after $(($(now) - t0))s"; return "$rc"; fi
  log "$name: built in $(($(now) - t0))s"
}

t_start=$(now)
log "versions: kubernetes $KUBE_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION, helm $HELM_VERSION, lws $LWS_VERSION; cache $CACHE; jobs $jobs; go -p $GO_P; $(go version)"

rc=0
comp() { # name: run_component with its check, builder and dir, if wanted
  wanted "$1" || return 0
  case "$1" in
    kubernetes) run_component kubernetes k8s_ok build_k8s "$K8S_DIR" ;;
    node) run_component node node_ok build_node "$NODE_DIR" ;;
    etcd) run_component etcd etcd_ok build_etcd "$ETCD_DIR" ;;
    kwok) run_component kwok kwok_ok build_kwok "$KWOK_DIR" ;;
    helm) run_component helm helm_ok build_helm "$HELM_DIR" ;;
    lws) run_component lws lws_ok build_lws "$LWS_DIR" ;;
    epp) run_component epp epp_ok build_epp "$EPP_DIR" ;;
  esac
}
if ((jobs >= 2)); then
  # Kubernetes is the long pole; the node follows it (its packages are then mostly in Go's build
  # cache); etcd, kwok and helm share the other slot.
  ( comp kubernetes && comp node ) & pid_k8s=$!
  ( comp etcd && comp kwok && comp helm && comp lws && comp epp ) & pid_rest=$!
  wait "$pid_k8s" || rc=1
  wait "$pid_rest" || rc=1
else
  for c in kubernetes node etcd kwok helm lws epp; do comp "$c" || rc=1; done
fi

if ((rc != 0)); then
  log "FAILED after $(($(now) - t_start))s"
  exit 1
fi
log "all components ready in $(($(now) - t_start))s"
! wanted kubernetes || printf 'K8S_BIN=%q\n' "$K8S_DIR/bin"
! wanted node || printf 'NODE_BIN=%q\n' "$NODE_DIR/bin"
! wanted etcd || printf 'ETCD_BIN=%q\n' "$ETCD_DIR/bin"
! wanted kwok || printf 'KWOK_BIN=%q\n' "$KWOK_DIR/bin"
! wanted helm || printf 'HELM_BIN=%q\n' "$HELM_DIR/bin"
! wanted lws || printf 'LWS_BIN=%q\n' "$LWS_DIR/bin"
! wanted epp || printf 'EPP_BIN=%q\n' "$EPP_DIR/bin"
