#!/usr/bin/env bash
# make bench (issue 3): berth against podman (crun and runc) on this machine.
#   1. `run --rm --network none busybox true`, interleaved rounds, medians and ratios;
#   2. memory per running container: berth's monitor against podman's conmon
#      (RSS, PSS and private memory from /proc/PID/smaps_rollup);
#   3. `ps` with N running containers, berth against `podman ps`.
# RUNS (default 20) rounds for 1 and 3, N (default 100) running containers.
# Everything lives in a temp dir (private berth root, private podman
# --root/--runroot); containers, images, mounts and the dir are removed on
# exit, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
BERTH=${BERTH:-$PWD/target/release/berth}
RUNS=${RUNS:-20}
N=${N:-100}
[ -x "$BERTH" ] || { echo "bench-run: $BERTH not found; run 'cargo build --release' first" >&2; exit 1; }
for c in podman crun runc skopeo python3; do
  command -v "$c" >/dev/null || { echo "bench-run: $c missing; run scripts/install-deps.sh --bench" >&2; exit 1; }
done

work=$(mktemp -d /tmp/berth-bench-run.XXXXXX)
HUG=""
P=(podman --root "$work/podman/s" --runroot "$work/podman/r" --storage-driver overlay
   --cgroup-manager cgroupfs --events-backend file)
. scripts/libpod-cgroups.sh
cleanup() {
  set +e
  if [ -d "$work/berth" ]; then
    ids=$("$BERTH" --root "$work/berth" ps -aq --no-trunc 2>/dev/null)
    [ -n "$ids" ] && "$BERTH" --root "$work/berth" rm -f $ids >/dev/null 2>&1
  fi
  if [ -d "$work/podman" ]; then
    "${P[@]}" rm -a -f -t 0 >/dev/null 2>&1
    # conmon runs `podman container cleanup` after each container; a late
    # one would re-create the store (and its bind mount) after the reset.
    for _ in $(seq 300); do pgrep -f -- "$work/" >/dev/null || break; sleep 0.1; done
    "${P[@]}" system reset -f >/dev/null 2>&1
  fi
  grep " $work/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  if [ -n "$HUG" ]; then umount /sys/fs/cgroup/hugetlb && rmdir /sys/fs/cgroup/hugetlb; fi
  drop_libpod_parent
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Host fix 1 (DESIGN.md): root here may not raise RLIMIT_NOFILE above 20000,
# and podman's default ulimits ask for more, so crun and runc fail with
# EPERM. A private containers.conf (CONTAINERS_CONF) carries the fix for
# this run only; /etc is left alone.
printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n' > "$work/containers.conf"
export CONTAINERS_CONF=$work/containers.conf
echo "host fix applied: podman default_ulimits nofile=20000:20000 nproc=32768:32768 (CONTAINERS_CONF=$CONTAINERS_CONF)"
# Host fix 2 (DESIGN.md): crun refuses a hybrid host whose hugetlb
# controller sits on cgroup2; mount it as a v1 hierarchy for the run.
if ! grep -q ' /sys/fs/cgroup/hugetlb ' /proc/self/mountinfo \
   && grep -qw hugetlb /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null; then
  mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb && HUG=1
  echo "host fix applied: hugetlb mounted as a v1 hierarchy on /sys/fs/cgroup/hugetlb (unmounted at exit)"
else
  echo "host fix not needed: hugetlb is not on cgroup2 here (crun accepts the layout as it is)"
fi

echo "building the busybox image (scripts/oci-image.sh) and loading it into both stores..." >&2
scripts/oci-image.sh "$work/oci" latest >/dev/null
skopeo copy -q "oci:$work/oci:latest" "docker-archive:$work/busybox.tar:busybox:latest"
"$BERTH" --root "$work/berth" load -q -i "$work/busybox.tar" >/dev/null
"${P[@]}" load -q -i "$work/busybox.tar" >/dev/null
rm -f "$work/busybox.tar"

echo "machine: $(nproc) cores, $(uname -r), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "versions: $("$BERTH" --version 2>/dev/null | head -1); $(podman --version); $(crun --version | head -1); $(runc --version | head -1)"

BERTH_ROOT_DIR=$work/berth RUNS=$RUNS N=$N WORK=$work BERTH=$BERTH python3 - "${P[@]}" <<'PY'
import ctypes, os, statistics, subprocess, sys, time

libc = ctypes.CDLL(None, use_errno=True)
B = [os.environ["BERTH"], "--root", os.environ["BERTH_ROOT_DIR"]]
P = sys.argv[1:]
RUNS = int(os.environ["RUNS"])
N = int(os.environ["N"])
WORK = os.environ["WORK"]
NULL = subprocess.DEVNULL


def subreaper(on):
    # berth's monitors outlive the command (this host's pid 1 reaps
    # nothing): while berth runs we are their subreaper and reap them.
    # podman is left as it runs normally: conmon under pid 1 (as a child of
    # a subreaper podman waits seconds for conmon's exit file).
    libc.prctl(36, 1 if on else 0, 0, 0, 0)


def reap_all():
    while True:
        try:
            os.wait()
        except ChildProcessError:
            return


def timed(cmd, berth):
    subreaper(berth)
    t = time.perf_counter()
    r = subprocess.run(cmd, stdin=NULL, stdout=NULL, stderr=subprocess.PIPE)
    dt = (time.perf_counter() - t) * 1000
    if r.returncode != 0:
        sys.exit(f"bench-run: {' '.join(cmd)} failed: {r.stderr.decode()[-500:]}")
    if berth:
        # The monitor finishes its cleanup after the exit was reported;
        # the next command starts once it is gone (not timed).
        reap_all()
    subreaper(False)
    return dt


def med(v):
    return statistics.median(v)


run_cmds = [
    ("berth", B + ["run", "--rm", "--network", "none", "busybox", "true"], True),
    ("podman+crun", P + ["--runtime", "crun", "run", "--rm", "--network", "none", "busybox", "true"], False),
    ("podman+runc", P + ["--runtime", "runc", "run", "--rm", "--network", "none", "busybox", "true"], False),
]
times = {n: [] for n, _, _ in run_cmds}
for rnd in range(RUNS + 2):
    order = run_cmds[rnd % 3:] + run_cmds[:rnd % 3]
    for name, cmd, berth in order:
        dt = timed(cmd, berth)
        if rnd >= 2:  # two warm-up rounds
            times[name].append(dt)
bm = med(times["berth"])
print()
print(f"## run --rm --network none busybox true ({RUNS} interleaved rounds after 2 warm-up rounds)")
print()
print("| command | median ms | min ms | max ms | median / berth's |")
print("|---|---|---|---|---|")
for name, _, _ in run_cmds:
    v = times[name]
    print(f"| {name} | {med(v):.1f} | {min(v):.1f} | {max(v):.1f} | {med(v) / bm:.1f}x |")
sys.stdout.flush()


def rollup(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1])
    except OSError:
        return None
    return out


def procs(match):
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            comm = open(f"/proc/{d}/comm").read().strip()
            cmdline = open(f"/proc/{d}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if match(comm, cmdline):
            found.append(int(d))
    return found


def start_many(cmd, berth):
    for i in range(N):
        subreaper(berth)
        r = subprocess.run(cmd, stdin=NULL, stdout=NULL, stderr=subprocess.PIPE)
        subreaper(False)
        if r.returncode != 0:
            sys.exit(f"bench-run: {' '.join(cmd)} failed: {r.stderr.decode()[-500:]}")


print()
print(f"starting {N} `sleep` containers in each engine...", file=sys.stderr)
t = time.perf_counter()
start_many(B + ["run", "-d", "--network", "none", "busybox", "sleep", "100000"], True)
b_start = (time.perf_counter() - t) * 1000 / N
t = time.perf_counter()
start_many(P + ["--runtime", "crun", "run", "-d", "--network", "none", "busybox", "sleep", "100000"], False)
p_start = (time.perf_counter() - t) * 1000 / N
me = os.getpid()
mons = procs(lambda c, l: c == "berth-monitor" and WORK in l)
conmons = procs(lambda c, l: c == "conmon" and WORK in l)


def mem_rows(name, pids):
    rows = [r for r in (rollup(p) for p in pids) if r]
    if not rows:
        return f"| {name} | 0 processes found | | | | |"
    rss = med([r["Rss"] for r in rows]) / 1024
    pss = med([r["Pss"] for r in rows]) / 1024
    priv = med([r["Private_Clean"] + r["Private_Dirty"] for r in rows]) / 1024
    dirty = med([r["Private_Dirty"] for r in rows]) / 1024
    tot = sum(r["Pss"] for r in rows) / 1024
    return f"| {name} | {len(rows)} | {rss:.2f} | {pss:.2f} | {priv:.2f} | {dirty:.2f} | {tot:.1f} |"


print()
print(f"## memory per running container ({N} running `sleep` containers per engine; MiB, medians per process)")
print()
print("| process | count | RSS | PSS | private (clean+dirty) | private dirty | PSS sum of all |")
print("|---|---|---|---|---|---|---|")
print(mem_rows("berth monitor (berth-monitor)", mons))
print(mem_rows("podman conmon", conmons))
print()
print(f"average `run -d` while starting them: berth {b_start:.0f} ms, podman+crun {p_start:.0f} ms")
sys.stdout.flush()

ps_cmds = [("berth ps", B + ["ps"], True), ("podman ps", P + ["ps"], False)]
pst = {n: [] for n, _, _ in ps_cmds}
for rnd in range(RUNS + 2):
    order = ps_cmds if rnd % 2 == 0 else ps_cmds[::-1]
    for name, cmd, berth in order:
        dt = timed(cmd, False)
        if rnd >= 2:
            pst[name].append(dt)
lines = subprocess.run(B + ["ps", "-q"], capture_output=True).stdout.decode().split()
pl = subprocess.run(P + ["ps", "-q"], capture_output=True).stdout.decode().split()
print()
print(f"## ps with {len(lines)} (berth) / {len(pl)} (podman) running containers ({RUNS} interleaved rounds)")
print()
print("| command | median ms | min ms | max ms | median / berth's |")
print("|---|---|---|---|---|")
bps = med(pst["berth ps"])
for name, _, _ in ps_cmds:
    v = pst[name]
    print(f"| {name} | {med(v):.1f} | {min(v):.1f} | {max(v):.1f} | {med(v) / bps:.1f}x |")
sys.stdout.flush()

print(f"\nremoving the {N} containers of each engine...", file=sys.stderr)
subreaper(True)
ids = subprocess.run(B + ["ps", "-aq", "--no-trunc"], capture_output=True).stdout.decode().split()
if ids:
    subprocess.run(B + ["rm", "-f"] + ids, stdout=NULL)
reap_all()
subreaper(False)
subprocess.run(P + ["rm", "-a", "-f", "-t", "0"], stdout=NULL, stderr=NULL)
PY
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
