#!/usr/bin/env bash
# Install the Debian packages the project's tests need that PyPI cannot provide, at the versions
# the project was tested with (Debian 12 "bookworm"):
#
#   prometheus      brings `promtool`: `promtool check rules` / `promtool test rules` run the chart's
#                   alerting and recording rules in `make test` (scripts/chart-test.sh)
#   podman          builds and holds the project's images (scripts/image/, scripts/node/images.sh)
#                   and exports them to the real test node (scripts/node/load-image.sh)
#   runc            the OCI runtime of podman and of the node's containerd (crun, podman's default,
#                   refuses the hybrid cgroup layout of our machines)
#   containerd      the container runtime of the real test node hermes-node-0 (scripts/node/up.sh);
#                   also brings `ctr`, which imports images into it
#   containernetworking-plugins
#                   bridge, host-local, portmap, loopback: the node's pod network (/usr/lib/cni)
#   iptables        kube-proxy's Service rules on the node (iptables mode)
#   conntrack       kube-proxy clears stale UDP/NAT entries with it
#   openssl         signs the node's kubelet and kube-proxy certificates with the cluster CA
#   busybox-static  the e2e tests' tiny workload image (scripts/node/images.sh busybox)
#   mmdebstrap      builds Debian base images without a registry (scripts/image/base.sh)
#
# Pinned: a package is installed when it is missing or at another version than the one below (the
# versions of a Debian 12 point release; when Debian has replaced one, apt-get says the version is
# not found: update the pin after checking the new one). Idempotent and quiet: `apt-get update`
# runs only when something is to be installed. Needs root (CI and our dev machines run as root);
# otherwise it prints the apt-get command to run and fails.
set -euo pipefail

packages=(
  prometheus=2.42.0+ds-5+deb12u1
  podman=4.3.1+ds1-8+deb12u1+b3
  runc=1.1.5+ds1-1+deb12u1
  containerd=1.6.20~ds1-1+deb12u3
  containernetworking-plugins=1.1.1+ds1-3+b5
  iptables=1.8.9-2
  conntrack=1:1.4.7-1+b2
  openssl   # any version: only its CLI signs certificates, and Debian replaces it with each security fix
  busybox-static=1:1.35.0-4+deb12u1+b1
  mmdebstrap=1.3.5-7
)

todo=()
for pv in "${packages[@]}"; do
  p=${pv%%=*} want=${pv#*=}
  have=$(dpkg-query -W -f='${Status} ${Version}' "$p" 2>/dev/null || true)
  if [[ $pv != *=* ]]; then # unpinned: present at any version is enough
    [[ $have == "install ok installed "* ]] || todo+=("$pv")
  else
    [[ $have == "install ok installed $want" ]] || todo+=("$pv")
  fi
done
((${#todo[@]} == 0)) && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "install-system.sh: Debian packages missing or at another version: ${todo[*]}" >&2
  echo "  run as root: apt-get update && apt-get install -y --no-install-recommends --allow-downgrades ${todo[*]}" >&2
  exit 1
fi

echo "install-system.sh: installing ${todo[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# The prometheus and containerd packages ship daemons; we only want promtool, and run our own
# containerd (scripts/node/up.sh). policy-rc.d exit code 101 tells the maintainer scripts not to
# start services, so installing never leaves a Prometheus or a system containerd running.
# It is removed again unless it existed before (another tool's own policy is left alone).
policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  own_policy=1
fi
trap '((own_policy)) && rm -f "$policy"' EXIT
# Debian's mirrors keep only the newest version of a package in a suite: when a point release or a
# security update replaces a pinned version, that pin can no longer be installed. Then the version
# the mirror offers is installed instead, and the substitution is printed loudly (update the pin
# after checking the new version), rather than leaving a fresh machine unable to run the tests.
install_args=()
for pv in "${todo[@]}"; do
  p=${pv%%=*} want=${pv#*=}
  if [[ $pv != *=* ]]; then install_args+=("$p"); continue; fi
  offered=$(apt-cache madison "$p" 2>/dev/null | awk -F' *[|] *' -v v="$want" '$2 == v {print $2; exit}')
  if [[ -n $offered ]]; then
    install_args+=("$pv")
  else
    echo "install-system.sh: WARNING: $p $want is no longer offered by the mirror; installing" >&2
    echo "  $(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}') instead. Update its pin in $0." >&2
    install_args+=("$p")
  fi
done
if ! apt-get install -y -qq --no-install-recommends --allow-downgrades "${install_args[@]}" >/dev/null; then
  echo "install-system.sh: apt-get install ${install_args[*]} failed (see above)." >&2
  exit 1
fi
