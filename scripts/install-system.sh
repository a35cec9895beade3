#!/usr/bin/env bash
# Install the Debian packages the project's tests need that PyPI cannot provide.
#
#   prometheus   brings `promtool`: `promtool check rules` / `promtool test rules` run the chart's
#                alerting and recording rules in `make test` (scripts/chart-test.sh)
#
# Idempotent and quiet: a package already installed is not touched, and `apt-get update` runs only
# when something is missing. Needs root (CI and our dev machines run as root); otherwise it prints
# the apt-get command to run and fails.
set -euo pipefail

packages=(prometheus)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "install-system.sh: missing Debian packages: ${missing[*]}" >&2
  echo "  run as root: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo "install-system.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# The prometheus package ships a daemon; we only want its promtool. policy-rc.d exit code 101 tells
# the maintainer scripts not to start services, so installing never leaves a Prometheus running.
# It is removed again unless it existed before (another tool's own policy is left alone).
policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  own_policy=1
fi
trap '((own_policy)) && rm -f "$policy"' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
