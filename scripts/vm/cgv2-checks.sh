#!/bin/sh
# Runs inside the cgroup-v2-only VM built by scripts/vm-cgv2.sh, as PID 1.
# Prints one line per check: "CHECK <name> ok|fail <detail>", then "VM-DONE"
# and powers off. tests/cgroup_v2_vm_e2e.rs asserts on these lines.
export PATH=/bin:/sbin BERTH_ROOT=/var/lib/berth HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t cgroup2 none /sys/fs/cgroup
insmod /mods/overlay.ko
insmod /mods/loop.ko
dd if=/dev/zero of=/disk.img bs=1M count=16 2>/dev/null
losetup /dev/loop0 /disk.img
echo "+memory +pids +cpu +cpuset +io" > /sys/fs/cgroup/cgroup.subtree_control

check() { # name ok|fail detail...
  n=$1; r=$2; shift 2
  echo "CHECK $n $r $(echo "$*" | tr '\n' ' ')"
}
expect() { # name expected actual
  if [ "$2" = "$3" ]; then check "$1" ok "$3"; else check "$1" fail "want [$2] got [$3]"; fi
}
finish() {
  echo VM-DONE
  sync
  poweroff -f
}
trap finish EXIT

fs=$(stat -fc %t /sys/fs/cgroup)
if [ "$fs" = 63677270 ] && ! grep -q ' cgroup ' /proc/mounts; then
  check v2-only ok "cgroup2fs (magic $fs); controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
else
  check v2-only fail "$fs $(grep cgroup /proc/mounts)"
fi

out=$(berth load -i /image.tar 2>&1); rc=$?
[ $rc = 0 ] && check load ok "$out" || check load fail "rc=$rc $out"
berth images 2>&1

# Limits written by `run`, read from inside the container (private cgroupns).
out=$(berth run --network none --rm -m 64m --pids-limit 20 --cpus 0.5 --cpuset-cpus 0 busybox \
  cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpuset.cpus 2>&1)
expect run-limits "67108864 20 50000 100000 0" "$(echo $out)"

# Swap: docker's -m without --memory-swap allows as much swap again.
out=$(berth run --network none --rm -m 32m --memory-swap 64m busybox cat /sys/fs/cgroup/memory.swap.max 2>&1)
expect run-swap "33554432" "$out"

out=$(berth run --network none --rm busybox cat /proc/self/cgroup 2>&1)
expect cgroupns "0::/" "$out"

# Weights: docker's shares->weight conversion (runc's 1 + (s-2)*9999/262142).
out=$(berth run --network none --rm -c 512 --memory-reservation 32m busybox \
  cat /sys/fs/cgroup/cpu.weight /sys/fs/cgroup/memory.low 2>&1)
expect run-weights "20 33554432" "$(echo $out)"

# Devices (eBPF on v2): the same char device (ttyS0, 4:64, no capability
# check of its own) is refused by default and opens once --device allows it.
out=$(berth run --network none --rm busybox sh -c 'busybox mknod /tmp/t c 4 64 && head -c0 /tmp/t && echo opened' 2>&1)
case "$out" in
  *"not permitted"*) check devices-deny ok "$out" ;;
  *) check devices-deny fail "$out" ;;
esac
out=$(berth run --network none --rm --device /dev/ttyS0 busybox sh -c 'head -c0 /dev/ttyS0 && echo opened' 2>&1)
expect devices-allow "opened" "$out"

# berth started from a non-root cgroup that holds processes (a login
# session on a systemd host): the container cgroup must still get limits.
mkdir -p /sys/fs/cgroup/session
out=$(sh -c 'echo $$ > /sys/fs/cgroup/session/cgroup.procs && exec berth run --network none --rm -m 48m busybox cat /sys/fs/cgroup/memory.max' 2>&1)
expect nested-session "50331648" "$out"
# The container's monitor (a child of that berth, so also in "session")
# may still be finishing the --rm cleanup: wait for it to leave.
i=0
while ! rmdir /sys/fs/cgroup/session 2>/dev/null && [ $i -lt 300 ]; do
  [ $i = 50 ] && for p in $(cat /sys/fs/cgroup/session/cgroup.procs 2>/dev/null); do
    echo "INFO session-proc $p $(tr '\0' ' ' < /proc/$p/cmdline) $(grep State /proc/$p/status)"
  done
  sleep 0.1; i=$((i+1))
done
echo "INFO session-rmdir-waits $i $(ls /sys/fs/cgroup/session 2>/dev/null | grep -v '\.' | tr '\n' ' ')"

# Block I/O: a direct read from a --device loop disk shows in io.stat and
# in stats' BLOCK I/O (docker prints it in decimal units).
berth run --network none -d --name io --device /dev/loop0 busybox sleep 600 >/dev/null 2>&1
berth exec io busybox dd if=/dev/loop0 of=/dev/null bs=1M count=4 iflag=direct >/dev/null 2>&1
out=$(berth stats --no-stream --format '{{.BlockIO}}' io 2>&1)
expect stats-blkio "4.19MB / 0B" "$out"
berth rm -f io >/dev/null 2>&1

# OOM: dd's 64 MiB block buffer cannot fit in 16 MiB.
berth run --network none --name oom -m 16m --memory-swap 16m busybox busybox dd if=/dev/zero of=/dev/null bs=64M count=1 >/tmp/oom.out 2>&1
rc=$?
oomk=$(berth inspect --format '{{.State.OOMKilled}}' oom 2>&1)
if [ "$rc" = 137 ]; then check oom-exit ok 137; else check oom-exit fail "want 137 got $rc: $(head -c 300 /tmp/oom.out)"; fi
expect oom-killed "true" "$oomk"
berth rm -f oom >/dev/null 2>&1

# A detached container: update, stats, pause/unpause, rm -f.
id=$(berth run --network none -d --name upd -m 64m busybox sleep 600 2>&1)
pid=$(berth inspect --format '{{.State.Pid}}' upd 2>&1)
cgpath=$(cut -d: -f3 /proc/"$pid"/cgroup 2>/dev/null)
cg=/sys/fs/cgroup$cgpath
if [ -n "$cgpath" ] && [ "$cgpath" != / ] && [ -d "$cg" ]; then
  check cgroup-dir ok "$cgpath"
else
  check cgroup-dir fail "id=$id pid=$pid path=[$cgpath]"
fi
expect run-d-memory "67108864" "$(cat "$cg/memory.max" 2>&1)"

out=$(berth update -m 128m --memory-swap 256m --pids-limit 50 --cpus 1.5 upd 2>&1)
[ $? = 0 ] || check update fail "$out"
expect update-memory "134217728" "$(cat "$cg/memory.max" 2>&1)"
expect update-swap "134217728" "$(cat "$cg/memory.swap.max" 2>&1)"
expect update-pids "50" "$(cat "$cg/pids.max" 2>&1)"
expect update-cpus "150000 100000" "$(cat "$cg/cpu.max" 2>&1)"
expect update-inspect "134217728" "$(berth inspect --format '{{.HostConfig.Memory}}' upd 2>&1)"

out=$(berth stats --no-stream --format '{{.MemUsage}}|{{.PIDs}}' upd 2>&1)
case "$out" in
  0B*|*--*|"") check stats fail "$out" ;;
  *"/ 128MiB|1") check stats ok "$out" ;;
  *) check stats fail "$out" ;;
esac

expect exec-cgroup "0::/" "$(berth exec upd cat /proc/self/cgroup 2>&1)"
expect exec-procs "2" "$(berth exec upd cat /sys/fs/cgroup/cgroup.procs 2>&1 | wc -l)"

out=$(berth update --cpuset-cpus 1 -c 2048 --memory-swap -1 upd 2>&1)
expect update-more "1 79 max" "$(cat "$cg/cpuset.cpus" "$cg/cpu.weight" "$cg/memory.swap.max" 2>&1 | tr '\n' ' ' | sed 's/ $//')"
out=$(berth top upd 2>&1)
case "$out" in *"sleep 600"*) check top ok "$(echo $out)" ;; *) check top fail "$out" ;; esac

out=$(berth pause upd 2>&1)
expect pause-freeze "1" "$(cat "$cg/cgroup.freeze" 2>&1)"
expect pause-frozen "frozen 1" "$(grep frozen "$cg/cgroup.events" 2>&1)"
expect pause-status "paused" "$(berth inspect --format '{{.State.Status}}' upd 2>&1)"
out=$(berth unpause upd 2>&1)
expect unpause-freeze "0" "$(cat "$cg/cgroup.freeze" 2>&1)"
expect unpause-status "running" "$(berth inspect --format '{{.State.Status}}' upd 2>&1)"

# Limits survive an update while paused and a restart (same cgroup).
berth pause upd >/dev/null 2>&1
out=$(berth update -m 200m upd 2>&1)
expect update-paused "209715200" "$(cat "$cg/memory.max" 2>&1)"
berth unpause upd >/dev/null 2>&1
out=$(berth restart -t 1 upd 2>&1)
pid2=$(berth inspect --format '{{.State.Pid}}' upd 2>&1)
cg2=/sys/fs/cgroup$(cut -d: -f3 /proc/"$pid2"/cgroup 2>/dev/null)
expect restart-limits "209715200 $cg" "$(cat "$cg2/memory.max" 2>&1) $cg2"

# Pause of busy tasks: v2 freezes asynchronously, `pause` must return only
# once cgroup.events reports it.
berth run --network none -d --name spin busybox sh -c 'for i in 1 2 3 4 5 6; do while :; do :; done & done; wait' >/dev/null 2>&1
sleep 1
spid=$(berth inspect --format '{{.State.Pid}}' spin 2>&1)
scg=/sys/fs/cgroup$(cut -d: -f3 /proc/"$spid"/cgroup 2>/dev/null)
out=$(berth pause spin 2>&1)
expect pause-busy "frozen 1 7" "$(grep frozen "$scg/cgroup.events" 2>&1) $(grep -c . "$scg/cgroup.procs" 2>&1)"
berth rm -f spin >/dev/null 2>&1

out=$(berth rm -f upd 2>&1)
if [ -d "$cg" ]; then check rm-cgroup fail "$cg still exists"; else check rm-cgroup ok "$cgpath removed"; fi

# The OCI runtime alone, on a hand-written bundle.
b=/tmp/bundle
mkdir -p $b/rootfs
cp -a /bin/busybox $b/rootfs/ 2>/dev/null
mkdir -p $b/rootfs/bin $b/rootfs/proc $b/rootfs/sys $b/rootfs/dev
ln -s ../busybox $b/rootfs/bin/sh; ln -s ../busybox $b/rootfs/bin/cat
cat > $b/config.json <<'JSON'
{"ociVersion":"1.0.2","root":{"path":"rootfs"},
 "process":{"user":{"uid":0,"gid":0},"cwd":"/","args":["/bin/cat","/sys/fs/cgroup/memory.max","/sys/fs/cgroup/pids.max","/sys/fs/cgroup/io.weight","/sys/fs/cgroup/io.max"],
  "env":["PATH=/bin"]},
 "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
  {"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]},
  {"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["nosuid","noexec","nodev","relatime","ro"]}],
 "linux":{"cgroupsPath":"/berthvm/rt1",
  "resources":{"memory":{"limit":33554432},"pids":{"limit":7},"blockIO":{"weight":500,"throttleReadBpsDevice":[{"major":7,"minor":0,"rate":1048576}]}},
  "namespaces":[{"type":"pid"},{"type":"mount"},{"type":"ipc"},{"type":"uts"},{"type":"cgroup"}]}}
JSON
out=$(berth runtime --root /run/rt run -b $b rt1 2>&1)
expect runtime-run "33554432 7 default 4950 7:0 rbps=1048576 wbps=max riops=max wiops=max" "$(echo $out)"
berth runtime --root /run/rt delete --force rt1 >/dev/null 2>&1
if [ -d /sys/fs/cgroup/berthvm/rt1 ]; then check runtime-cgroup fail "/berthvm/rt1 left"; else check runtime-cgroup ok "removed"; fi

# With BFQ loaded, blkio weights go to io.bfq.weight on blkio's own scale.
insmod /mods/bfq.ko
sed -i 's|/sys/fs/cgroup/io.weight|/sys/fs/cgroup/io.bfq.weight|' $b/config.json
out=$(berth runtime --root /run/rt run -b $b rt2 2>&1)
expect runtime-bfq "33554432 7 default 500 7:0 rbps=1048576 wbps=max riops=max wiops=max" "$(echo $out)"
berth runtime --root /run/rt delete --force rt2 >/dev/null 2>&1
rmdir /sys/fs/cgroup/berthvm 2>/dev/null

left=$(find /sys/fs/cgroup -mindepth 1 -type d 2>/dev/null | tr '\n' ' ')
expect cgroups-left "" "$left"
