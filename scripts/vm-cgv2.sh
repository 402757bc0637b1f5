#!/usr/bin/env bash
# Builds a cgroup-v2-only test VM for berth: Debian's cloud kernel (cached by
# vm-kernel.sh) and an initramfs holding busybox, berth, overlay.ko, a busybox
# OCI image and scripts/vm/cgv2-checks.sh.
#   vm-cgv2.sh prepare BERTH_BIN KERNEL_CACHE WORK_DIR
#       prints "KERNEL=..." and "INITRD=..." (both inside WORK_DIR or the cache)
#   vm-cgv2.sh run BERTH_BIN KERNEL_CACHE WORK_DIR
#       prepare, then boot it under qemu (KVM when /dev/kvm exists, else TCG)
#       and print the serial console; the VM powers itself off.
set -euo pipefail
mode=${1:?usage: vm-cgv2.sh prepare|run BERTH_BIN KERNEL_CACHE WORK_DIR}
berth=${2:?BERTH_BIN}; cache=${3:?KERNEL_CACHE}; work=${4:?WORK_DIR}
here=$(cd "$(dirname "$0")" && pwd)
command -v busybox >/dev/null || { echo "vm-cgv2: busybox-static missing (scripts/install-deps.sh)" >&2; exit 1; }

kdir=$("$here/vm-kernel.sh" "$cache")
kver=$(ls "$kdir/lib/modules")
kernel="$kdir/boot/vmlinuz-$kver"
mods="$kdir/lib/modules/$kver"

mkdir -p "$work"
work=$(cd "$work" && pwd)
root="$work/initrd"
rm -rf "$root"
mkdir -p "$root"/{bin,proc,sys,dev,newroot} "$root/r"/{bin,sbin,proc,sys,dev,tmp,run,etc,mods,var/lib}
# Stage 1 (/init) copies /r into a tmpfs and switch_roots into it: pivot_root,
# which berth's runtime uses, refuses to run from the initramfs rootfs.
cp /bin/busybox "$root/bin/busybox"
cp /bin/busybox "$root/r/bin/busybox"
cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t tmpfs -o size=1200m,mode=755 tmpfs /newroot
/bin/busybox cp -a /r/. /newroot/
exec /bin/busybox switch_root /newroot /bin/sh /checks.sh
INIT
chmod +x "$root/init"
for a in $(busybox --list); do [ "$a" = busybox ] || ln -s busybox "$root/r/bin/$a"; done

# berth without debug info (the debug build is ~200 MiB) and the libs it links.
strip -o "$root/r/bin/berth" "$berth" 2>/dev/null || cp "$berth" "$root/r/bin/berth"
for lib in $(ldd "$berth" | awk '/=>/{print $3} /^\t\//{print $1}'); do
  mkdir -p "$root/r$(dirname "$lib")"
  cp -L "$lib" "$root/r$lib"
done

# Modules: overlay (the checks run with --network none), bfq (its
# io.bfq.weight) and loop (a block device for io.stat/io.max); none has
# dependencies.
for m in fs/overlayfs/overlay.ko block/bfq.ko drivers/block/loop.ko; do
  f="$mods/kernel/$m"
  [ -f "$f" ] || f=$(ls "$f".* 2>/dev/null | head -n1)
  case "$f" in
    *.xz) xz -dc "$f" > "$root/r/mods/$(basename "$m")" ;;
    *.zst) zstd -qdc "$f" > "$root/r/mods/$(basename "$m")" ;;
    *) cp "$f" "$root/r/mods/" ;;
  esac
done

# The image, as an OCI archive for `berth load` (no registry in the VM).
img="$work/oci"
rm -rf "$img"
"$here/oci-image.sh" "$img" busybox:latest >/dev/null
tar -C "$img" -cf "$root/r/image.tar" .
rm -rf "$img"

cp "$here/vm/cgv2-checks.sh" "$root/r/checks.sh"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/r/etc/passwd"
printf 'root:x:0:\n' > "$root/r/etc/group"

initrd="$work/initrd.cpio.gz"
gz() { if command -v pigz >/dev/null; then pigz -1; else gzip -1; fi; }
(cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gz) > "$initrd"
rm -rf "$root"

if [ "$mode" = prepare ]; then
  echo "KERNEL=$kernel"
  echo "INITRD=$initrd"
  exit 0
fi
accel="-accel tcg -cpu max"
# KVM is opt-in: nested KVM hangs in SeaBIOS on some hosts (this one).
[ "${BERTH_VM_KVM:-}" = 1 ] && accel="-enable-kvm"
# shellcheck disable=SC2086
exec qemu-system-x86_64 $accel -m 1536 -smp 2 -nographic -no-reboot \
  -kernel "$kernel" -initrd "$initrd" \
  -append "console=ttyS0 panic=-1 quiet cgroup_no_v1=all"
