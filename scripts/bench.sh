#!/usr/bin/env bash
# make bench: berth against its peers on this machine, interleaved in one run.
# Prints a Markdown table; docs/benchmarks.md records a run and these commands.
set -euo pipefail
cd "$(dirname "$0")/.."
BERTH=${BERTH:-$PWD/target/release/berth}
RUNS=${RUNS:-5}
here=$PWD
. scripts/registry.sh
work=$(mktemp -d /tmp/berth-bench.XXXXXX)
cleanup() {
  registry_stop || true
  for d in "$work"/podman-*; do [ -d "$d" ] && podman --root "$d/s" --runroot "$d/r" system reset -f >/dev/null 2>&1 || true; done
  umount -R "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

registry_start
echo "building the ~200 MB, 5-layer bench image..." >&2
"$here/scripts/oci-image.sh" "$work/oci" 1 /usr/include /usr/lib/gcc /usr/bin /usr/lib/python3.11 >/dev/null
skopeo copy -q --dest-tls-verify=false "oci:$work/oci:1" "docker://$REGISTRY/bench/big:1"
size=$(du -cb "$work"/oci/blobs/sha256/* | tail -1 | cut -f1)
echo "image: $((size / 1000000)) MB compressed in 5 layers" >&2

berth_t=(); podman_t=()
for i in $(seq "$RUNS"); do
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  t0=$(now_ms); "$BERTH" --root "$work/berth-$i" pull -q "$REGISTRY/bench/big:1" >/dev/null; t1=$(now_ms)
  berth_t+=($((t1 - t0)))
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  d="$work/podman-$i"; mkdir -p "$d"
  t0=$(now_ms); podman --root "$d/s" --runroot "$d/r" --storage-driver overlay pull -q --tls-verify=false "$REGISTRY/bench/big:1" >/dev/null; t1=$(now_ms)
  podman_t+=($((t1 - t0)))
  echo "run $i: berth ${berth_t[-1]} ms, podman ${podman_t[-1]} ms" >&2
done
bm=$(printf '%s\n' "${berth_t[@]}" | median); pm=$(printf '%s\n' "${podman_t[@]}" | median)

repull=()
for i in $(seq "$RUNS"); do
  t0=$(now_ms); "$BERTH" --root "$work/berth-1" pull -q "$REGISTRY/bench/big:1" >/dev/null; t1=$(now_ms)
  repull+=($((t1 - t0)))
done
rm=$(printf '%s\n' "${repull[@]}" | median)

echo
echo "| benchmark | berth (median ms) | podman (median ms) | podman / berth |"
echo "|---|---|---|---|"
printf '| pull + unpack, %d MB in 5 layers, empty store | %s | %s | %.2fx |\n' "$((size / 1000000))" "$bm" "$pm" "$(echo "$pm / $bm" | bc -l)"
printf '| re-pull, all layers present | %s | | |\n' "$rm"
