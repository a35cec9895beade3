#!/usr/bin/env bash
# Runs one test tier or all of them. Tiers: lint unit chart integration image e2e (all = each in turn).
# Each tier starts the real servers it needs through the project's own scripts.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
tier=${1:-all}

# pytest exits 5 when it collected nothing: for a tier that must have tests that is a failure.
run_pytest() {
  local rc=0
  "$BIN/pytest" "$@" || rc=$?
  if [ "$rc" -eq 5 ]; then echo "pytest collected no tests for: $*" >&2; return 1; fi
  return "$rc"
}

lint() {
  echo "== lint: ruff, mypy, import-linter, hadolint"
  "$BIN/ruff" check operator sidecar tests bench scripts
  "$BIN/hadolint" Dockerfile Dockerfile.vllm-cpu
  "$BIN/mypy"
  "$BIN/lint-imports"
}

unit() {
  echo "== unit"
  run_pytest tests/unit -q
}

chart() {
  echo "== chart: helm lint, chart unit tests, promtool"
  bash scripts/chart-test.sh
}

integration() {
  echo "== integration: real Redis with vector search, real vLLM on the CPU"
  run_pytest tests/integration -q -m integration
}

image() {
  echo "== image: the operator + sidecar and vLLM CPU images, built with podman and run"
  run_pytest tests/image -q -m image
}

e2e() {
  echo "== e2e: real control plane with fake GPU nodes and a real kubelet node running the operator's pods"
  bash scripts/cluster-up.sh
  local rc=0
  KUBECONFIG="$PWD/.e2e/kubeconfig" run_pytest tests/e2e -q -m e2e || rc=$?
  [ "${HERMES_KEEP_CLUSTER:-0}" = 1 ] || bash scripts/cluster-down.sh
  return "$rc"
}

case "$tier" in
  all) lint; unit; chart; integration; image; e2e ;;
  lint|unit|chart|integration|image|e2e) "$tier" ;;
  *) echo "usage: $0 [all|lint|unit|chart|integration|image|e2e]" >&2; exit 2 ;;
esac
