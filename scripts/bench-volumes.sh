#!/usr/bin/env bash
# Volume costs on top of `run --rm`: a named volume, a read-only bind
# (recursive, mount_setattr), and an anonymous volume over /usr/include
# (copy-up of ~8,700 entries / 129 MB, then removal with --rm).
#   flock /work/coord/bench.lock scripts/bench-volumes.sh
# Runs itself as a child subreaper so the detached monitors are reaped.
set -euo pipefail
cd "$(dirname "$0")/.."
BERTH=${BERTH:-$PWD/target/release/berth}
RUNS=${RUNS:-10}
if [ -z "${BENCH_SUBREAPER:-}" ]; then
  exec env BENCH_SUBREAPER=1 python3 -c 'import ctypes,os,sys; ctypes.CDLL(None).prctl(36,1,0,0,0); os.execvp(sys.argv[1], sys.argv[1:])' "$0" "$@"
fi
work=$(mktemp -d /tmp/berth-bench-vol.XXXXXX)
cleanup() {
  "$BERTH" --root "$work/root" volume prune -af >/dev/null 2>&1 || true
  umount -R "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
scripts/oci-image.sh "$work/oci" 1 /usr/include >/dev/null
tar -C "$work/oci" -cf "$work/img.tar" .
"$BERTH" --root "$work/root" load -q -i "$work/img.tar" >/dev/null
img=$("$BERTH" --root "$work/root" images -q | head -1)
mkdir -p "$work/host"
B="$BERTH --root $work/root"
"$BERTH" --root "$work/root" volume create named >/dev/null
hyperfine -N --warmup 2 --runs "$RUNS" \
  -n 'run --rm' "$B run --rm --network none $img true" \
  -n 'run --rm -v named:/d' "$B run --rm --network none -v named:/d $img true" \
  -n 'run --rm -v /host:/d:ro' "$B run --rm --network none -v $work/host:/d:ro $img true" \
  -n 'run --rm -v /usr/include (copy-up 129 MB)' "$B run --rm --network none -v /usr/include $img true"
