#!/bin/sh
# `run` of `true` on a prepared busybox bundle: berth's runtime vs crun and runc.
# Usage (as root, from the workspace root): runtime/bench/run-true.sh
# crun refuses this host's hybrid cgroups unless hugetlb is mounted off
# cgroup2; the script mounts it for the run and unmounts it afterwards.
set -eu
cargo build --release -p runtime --example berth-runtime
B="$(pwd)/target/release/examples/berth-runtime"
T=$(mktemp -d)
trap 'umount "$T/hugetlb" 2>/dev/null || true; [ -n "${HUG:-}" ] && umount /sys/fs/cgroup/hugetlb && rmdir /sys/fs/cgroup/hugetlb; rm -rf "$T"' EXIT
mkdir -p "$T/rootfs/bin" "$T/rootfs/proc" "$T/rootfs/sys" "$T/rootfs/dev"
cp /bin/busybox "$T/rootfs/bin/busybox"
ln -s busybox "$T/rootfs/bin/true"
ln -s busybox "$T/rootfs/bin/sh"
(cd "$T" && runc spec && sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"true"/' config.json)
HUG=""
if ! grep -q ' /sys/fs/cgroup/hugetlb ' /proc/self/mountinfo && grep -q hugetlb /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null; then
    mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb && HUG=1
fi
hyperfine -N --warmup 3 -r 30 \
    "$B --root $T/st-berth run -b $T b" \
    "crun --root $T/st-crun run -b $T c" \
    "runc --root $T/st-runc run -b $T r"
