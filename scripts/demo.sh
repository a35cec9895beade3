#!/usr/bin/env bash
# The main job for a new user. Until the local cluster is part of the demo, it renders every example
# policy with `hermes-cache plan` (no cluster needed) and prints what the operator would create.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
for policy in examples/*.yaml; do
  echo "=================================================================="
  echo "hermes-cache plan $policy --output table"
  echo "------------------------------------------------------------------"
  "$BIN/hermes-cache" plan "$policy" --output table
  echo
done
echo "Refusal example: gpuMemoryUtilization 1.7"
sed 's/gpuMemoryUtilization: 0.85/gpuMemoryUtilization: 1.7/' examples/hermes-70b-tp4.yaml \
  | "$BIN/hermes-cache" plan - --output table || echo "(refused as expected, exit code $?)"
