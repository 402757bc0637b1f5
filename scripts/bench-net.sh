#!/usr/bin/env bash
# make bench: the cost of bridge networking on a container start (berth
# against podman with netavark, interleaved in one run), and TCP throughput
# through a published port against the host's loopback.
# Run it under `flock /work/coord/bench.lock` when other work shares the machine.
# Prints Markdown; docs/benchmarks.md ("Networks") records a run and these commands.
set -euo pipefail
cd "$(dirname "$0")/.."
BERTH=${BERTH:-$PWD/target/release/berth}
RUNS=${RUNS:-30}
# Throughput: iperf3 rounds and seconds per transfer (port_throughput).
TPUT_ROUNDS=${TPUT_ROUNDS:-7}
TPUT_SECS=${TPUT_SECS:-3}
here=$PWD
. scripts/registry.sh
work=$(mktemp -d /tmp/berth-bench-net.XXXXXX)
# berth's own config: a private nft table, bridge device and subnet, and
# its socket redirect programs on a cgroup v2 directory of the bench's own
# (berth's default is the host's root cgroup, which would act on every
# process of this machine). A second config measures -p with DNAT only.
cg2=$(awk '$9 == "cgroup2" {print $5; exit}' /proc/self/mountinfo)
[ -n "$cg2" ] || { echo "bench-net: no cgroup2 mount" >&2; exit 1; }
cg=$cg2/berth-bench-$$
mkdir -p "$cg"
cat > "$work/berth.json" <<JSON
{"nft-table": "berth_bench", "bridge": "bbench0", "bip": "10.77.250.1/24",
 "default-address-pools": [{"base": "10.77.251.0/24", "size": 26}],
 "port-redirect": "$cg"}
JSON
jq '."port-redirect" = "off"' "$work/berth.json" > "$work/berth-dnat.json"
export BERTH_CONFIG=$work/berth.json
# podman: netavark (not this host's default CNI), runc (crun refuses the
# hybrid cgroups here), nofile/nproc the root here may set, and a private
# network config dir, so /etc/containers is not touched.
cat > "$work/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[network]
network_backend = "netavark"
network_config_dir = "$work/podman-networks"
[engine]
runtime = "runc"
events_logger = "file"
cgroup_manager = "cgroupfs"
CONF
export CONTAINERS_CONF=$work/containers.conf
P=(podman --root "$work/podman/s" --runroot "$work/podman/r" --storage-driver overlay)
# netavark adds iptables-nft chains (tables ip nat / ip filter) and keeps its
# base chains after the last container: remove those tables afterwards if
# this run created them and they hold nothing but netavark's rules.
tables_before=$(nft list tables)
drop_netavark_tables() {
  for t in nat filter; do
    grep -qx "table ip $t" <<<"$tables_before" && continue
    nft list table ip "$t" >/dev/null 2>&1 || continue
    if [ -z "$(iptables -t "$t" -S 2>/dev/null | grep -v -e NETAVARK -e '^-P ')" ]; then
      nft delete table ip "$t"
    fi
  done
}
. "$here/scripts/libpod-cgroups.sh"
cleanup() {
  "$BERTH" --root "$work/berth" rm -f $("$BERTH" --root "$work/berth" ps -aq 2>/dev/null) >/dev/null 2>&1 || true
  ip link del bbench0 2>/dev/null || true
  nft delete table inet berth_bench 2>/dev/null || true
  nft delete table ip berth_bench 2>/dev/null || true
  "${P[@]}" system reset -f >/dev/null 2>&1 || true
  drop_netavark_tables || true
  drop_libpod_parent
  registry_stop || true
  umount -R "$work" 2>/dev/null || true
  rm -rf "$work"
  rmdir "$cg" 2>/dev/null || true
}
trap cleanup EXIT

registry_start
"$here/scripts/oci-image.sh" "$work/oci" 1 >/dev/null
skopeo copy -q --dest-tls-verify=false "oci:$work/oci:1" "docker://$REGISTRY/bench/busybox:1"
IMG=$REGISTRY/bench/busybox:1
"$BERTH" --root "$work/berth" pull -q "$IMG" >/dev/null
"${P[@]}" pull -q --tls-verify=false "$IMG" >/dev/null
B="$BERTH --root $work/berth"
# First use creates the default bridge / podman0: not part of a start.
$B run --rm "$IMG" true
"${P[@]}" run --rm --network bridge "$IMG" true

hyperfine -N --warmup 3 -r "$RUNS" --export-json "$work/start.json" \
  "$B run --rm --network none $IMG true" \
  "$B run --rm $IMG true" \
  "$B run --rm -p 18080:80 $IMG true" \
  "env BERTH_CONFIG=$work/berth-dnat.json $B run --rm -p 18080:80 $IMG true" \
  "${P[*]} run --rm --network none $IMG true" \
  "${P[*]} run --rm --network bridge $IMG true" \
  "${P[*]} run --rm --network bridge -p 18080:80 $IMG true" >&2

med() { jq -r ".results[$1].median * 1000" "$work/start.json"; }
bn=$(med 0); bb=$(med 1); bp=$(med 2); bd=$(med 3); pn=$(med 4); pb=$(med 5); pp=$(med 6)
echo
echo "| run --rm busybox true (median ms) | none | bridge | bridge - none | bridge + -p | (-p) - none |"
echo "|---|---|---|---|---|---|"
printf '| berth | %.1f | %.1f | %.1f | %.1f | %.1f |\n' "$bn" "$bb" "$(echo "$bb - $bn" | bc -l)" "$bp" "$(echo "$bp - $bn" | bc -l)"
printf '| berth, port-redirect off (DNAT only) | | | | %.1f | %.1f |\n' "$bd" "$(echo "$bd - $bn" | bc -l)"
printf '| podman 4.3 + netavark 1.4 (runc) | %.1f | %.1f | %.1f | %.1f | %.1f |\n' "$pn" "$pb" "$(echo "$pb - $pn" | bc -l)" "$pp" "$(echo "$pp - $pn" | bc -l)"

# hyperfine runs each command's runs in a row, so load changes from other
# work on this machine land on one command; interleaved runs (none, bridge,
# bridge with -p, bridge with -p and DNAT only) give paired differences
# less exposed to it.
now_us() { date +%s%6N; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
dn=(); dp=(); dd=()
for _ in $(seq "$RUNS"); do
  t0=$(now_us); $B run --rm --network none "$IMG" true; t1=$(now_us)
  $B run --rm "$IMG" true; t2=$(now_us)
  $B run --rm -p 18080:80 "$IMG" true; t3=$(now_us)
  BERTH_CONFIG=$work/berth-dnat.json $B run --rm -p 18080:80 "$IMG" true; t4=$(now_us)
  dn+=($(( (t2 - t1) - (t1 - t0) ))); dp+=($(( (t3 - t2) - (t1 - t0) ))); dd+=($(( (t4 - t3) - (t1 - t0) )))
done
ms() { printf '%s\n' "$@" | median | awk '{print $1/1000}'; }
printf '\nberth, %s interleaved rounds: median (bridge - none) %.1f ms, (bridge -p - none) %.1f ms, (bridge -p, DNAT only - none) %.1f ms\n' "$RUNS" \
  "$(ms "${dn[@]}")" "$(ms "${dp[@]}")" "$(ms "${dd[@]}")"

echo
echo "published-port TCP throughput (iperf3; socket redirect and kernel DNAT):"
cargo build -q --release -p netns --example port_throughput
"$here/target/release/examples/port_throughput" "$TPUT_ROUNDS" "$TPUT_SECS"
