#!/usr/bin/env bash
# Installs the system packages berth's build, tests and demo need.
# Idempotent: skips apt entirely when everything is already present.
set -euo pipefail
want=(docker-registry busybox-static skopeo apache2-utils openssl nftables iptables iproute2 zstd pigz file podman conmon qemu-system-x86)
if [ "${1:-}" = "--bench" ]; then want+=(crun runc hyperfine golang-github-containers-common bc netavark jq python3 iperf3); fi
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian package starts no service here (no systemd), but make sure a
# stray one from an earlier install does not hold port 5000.
command -v docker-registry >/dev/null
