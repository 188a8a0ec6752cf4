#!/usr/bin/env bash
# Installs everything Lightly's demo and tests need on a Debian machine, then builds. Idempotent; run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then echo "setup: run as root (network namespaces and apt-get need it)" >&2; exit 1; fi
if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "setup: Node.js 20 or later is required (found: $(node --version 2>/dev/null || echo none))" >&2; exit 1
fi

# command the package provides -> Debian package
declare -A wanted=(
  [ip]=iproute2 [nft]=nftables [bird]=bird2 [gobgpd]=gobgpd [iperf3]=iperf3
  [ping]=iputils-ping [nsenter]=util-linux [iptables]=iptables [tc]=iproute2
  # the image test (deploy/image.test.ts): scripts/build-image.sh without a container registry
  [podman]=podman [runc]=runc [mmdebstrap]=mmdebstrap
  # routers in the rack lab, metrics checks and the dashboard screenshot
  [promtool]=prometheus [chromium]=chromium
)
missing=()
for cmd in "${!wanted[@]}"; do command -v "$cmd" >/dev/null || missing+=("${wanted[$cmd]}"); done
[ -x /usr/lib/cni/portmap ] || missing+=(containernetworking-plugins)
[ -x /usr/lib/frr/bgpd ] || missing+=(frr)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  # Packages such as frr and prometheus start their services on install; on this host they must not
  # (tests run their own, inside network namespaces), so service starts are refused while installing.
  keep_policy=$([ -e /usr/sbin/policy-rc.d ] && echo yes || echo no)
  [ "$keep_policy" = yes ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  [ "$keep_policy" = yes ] || rm -f /usr/sbin/policy-rc.d
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # npm 11 as set up on these machines leaves rollup's foreign-platform optional packages out of the
  # lock file, and then `npm ci` refuses it (npm/cli#4828). `npm install --no-save` installs the
  # same locked versions without rewriting the lock.
  npm ci --no-audit --no-fund --loglevel=error 2>/dev/null || npm install --no-save --no-audit --no-fund --loglevel=error
fi
npm run build --silent
