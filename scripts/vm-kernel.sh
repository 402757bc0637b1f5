#!/usr/bin/env bash
# Fetches Debian's cloud kernel (vmlinuz + modules) into a cache directory
# without installing it on the host: `apt-get download` + `dpkg-deb -x`.
# Prints the kernel directory: DIR/boot/vmlinuz-VER and DIR/lib/modules/VER.
# Usage: vm-kernel.sh CACHE_DIR
set -euo pipefail
cache=${1:?usage: vm-kernel.sh CACHE_DIR}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
# The cloud flavour boots fastest under qemu (virtio drivers built in) and
# still ships overlay, veth, bridge and nf_tables as modules.
pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
if [ -z "$pkg" ]; then
  apt-get update -qq >/dev/null
  pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
fi
[ -n "$pkg" ] || { echo "vm-kernel: cannot resolve linux-image-cloud-amd64" >&2; exit 1; }
dir="$cache/$pkg"
# Test binaries may run concurrently: one downloads, the others wait.
exec 9>"$cache/.lock"
flock 9
if [ ! -f "$dir/.done" ]; then
  tmp=$(mktemp -d "$cache/dl.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null)
  rm -rf "$dir"
  mkdir -p "$dir"
  dpkg-deb -x "$tmp"/"$pkg"_*.deb "$dir"
  touch "$dir/.done"
fi
echo "$dir"
