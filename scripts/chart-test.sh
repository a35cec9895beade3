#!/usr/bin/env bash
# The `chart` test tier (scripts/test.sh chart, part of `make test`):
#   1. the chart's CRD template matches crds/hermescachepolicy.yaml (scripts/sync-chart-crd.py --check)
#   2. helm lint --strict, with the default values and with every optional part turned on
#   3. chart unit tests: pytest on `helm template` output, the values schema, RBAC, monitors,
#      dashboards, metric names, and `promtool check rules` / `promtool test rules` on the rules
#      rendered from the chart (tests/unit/test_chart*.py, test_rules*.py, test_metric_names.py)
#
# Tools, found in this order (none is built inside the repo):
#   helm      $HERMES_HELM, .e2e/bin/helm (make cluster-up), the per-user build cache
#             ${HERMES_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/hermes-cache}/helm-<version>/bin/helm,
#             else scripts/k8s/build.sh builds it (with the rest of the cluster binaries, cached)
#   promtool  $HERMES_PROMTOOL, promtool on PATH, else scripts/install-system.sh (Debian prometheus)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=k8s/versions.env
source scripts/k8s/versions.env
PY=${PY:-$root/.venv/bin/python}
# Kubernetes version the chart is rendered and linted against: the one the e2e cluster runs.
KUBE=${KUBE_VERSION#v}

log() { printf '[chart-test] %s\n' "$*" >&2; }

find_helm() {
  local cache=${HERMES_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hermes-cache}
  local c
  for c in "${HERMES_HELM:-}" "$root/.e2e/bin/helm" "$cache/helm-$HELM_VERSION/bin/helm"; do
    if [[ -n $c && -x $c ]]; then echo "$c"; return 0; fi
  done
  log "helm $HELM_VERSION not found; building it with scripts/k8s/build.sh (cached per version)"
  local out
  out=$(bash scripts/k8s/build.sh) || return 1
  eval "$out"
  [[ -x ${HELM_BIN:-}/helm ]] && echo "$HELM_BIN/helm"
}

find_promtool() {
  if [[ -n ${HERMES_PROMTOOL:-} ]]; then echo "$HERMES_PROMTOOL"; return 0; fi
  command -v promtool >/dev/null 2>&1 || bash scripts/install-system.sh
  command -v promtool
}

helm=$(find_helm) || { log "ERROR: no helm (see messages above)"; exit 1; }
promtool=$(find_promtool) || { log "ERROR: no promtool; install Debian's prometheus package"; exit 1; }
log "helm: $helm ($("$helm" version --template '{{.Version}}'))"
log "promtool: $promtool ($("$promtool" --version 2>&1 | head -1))"

log "CRD template in sync with crds/hermescachepolicy.yaml"
"$PY" scripts/sync-chart-crd.py --check

log "helm lint --strict (defaults, and every optional part on)"
# operator.image.repository has no default (no public registry serves the image yet): lint with one.
IMAGE=(--set operator.image.repository=registry.example/hermes-cache)
"$helm" lint --strict --kube-version "$KUBE" charts/hermes-cache "${IMAGE[@]}"
"$helm" lint --strict --kube-version "$KUBE" charts/hermes-cache "${IMAGE[@]}" \
  --set redis.enabled=true,redis.persistence.enabled=true \
  --set monitoring.serviceMonitor.enabled=true,monitoring.podMonitor.enabled=true \
  --set monitoring.prometheusRule.enabled=true,monitoring.dashboards.enabled=true

log "chart unit tests, promtool check/test rules, metric names"
export HERMES_HELM=$helm HERMES_PROMTOOL=$promtool HERMES_KUBE_VERSION=$KUBE HERMES_REQUIRE_CHART_TOOLS=1
rc=0
"$root/.venv/bin/pytest" -q tests/unit/test_chart*.py tests/unit/test_rules*.py tests/unit/test_metric_names.py || rc=$?
if ((rc == 5)); then log "ERROR: pytest collected no chart tests"; exit 1; fi
exit "$rc"
