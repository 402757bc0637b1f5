#!/usr/bin/env bash
# berth demo: builds a busybox image offline, serves it from a throwaway
# docker-registry on a free loopback port, and walks through the image,
# container, network and volume commands. Uses target/release/berth (run
# `make build` first; `make demo` does). Leaves nothing behind: containers,
# networks, the demo's own bridge and nft table, the registry and every temp
# dir are removed on exit, also on failure or Ctrl-C.
set -euo pipefail

# Container monitors outlive the command that started them; on a host whose
# pid 1 does not reap (this one), make the demo their reaper.
if [ -z "${BERTH_DEMO_REAPER:-}" ] && command -v python3 >/dev/null; then
  export BERTH_DEMO_REAPER=1
  exec python3 -c 'import ctypes, os, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
os.execv("/bin/bash", ["bash"] + sys.argv[1:])' "$0" "$@"
fi

here=$(cd "$(dirname "$0")/.." && pwd)
berth_bin=${BERTH_BIN:-$here/target/release/berth}
[ -x "$berth_bin" ] || { echo "demo: $berth_bin not found; run 'make build' first" >&2; exit 1; }
command -v docker-registry >/dev/null || { echo "demo: docker-registry missing; run scripts/install-deps.sh" >&2; exit 1; }
command -v skopeo >/dev/null || { echo "demo: skopeo missing; run scripts/install-deps.sh" >&2; exit 1; }

work=$(mktemp -d /tmp/berth-demo.XXXXXX)
. "$here/scripts/registry.sh"
# Host-global names of the demo's own (berth's config, docker's daemon.json
# spelling): a private nft table, default bridge and subnets, so the demo
# never touches a berth already in use on this host.
# The socket redirect programs for published ports go to a cgroup v2
# directory of the demo's own (berth's default is the host's root cgroup),
# and the demo's own client joins it.
cg2=$(awk '$9 == "cgroup2" {print $5; exit}' /proc/self/mountinfo)
cg=${cg2:+$cg2/berth-demo-$$}
[ -z "$cg" ] || mkdir -p "$cg"
export BERTH_CONFIG=$work/berth-config.json
cat > "$BERTH_CONFIG" <<JSON
{"nft-table": "berthdemo", "bridge": "berthdemo0", "bip": "10.213.0.1/24",
 "default-address-pools": [{"base": "10.213.8.0/21", "size": 24}],
 "port-redirect": "${cg:-off}"}
JSON
cleanup() {
  if [ -d "$work/root" ]; then
    ids=$("$berth_bin" --root "$work/root" ps -aq 2>/dev/null || true)
    [ -z "$ids" ] || "$berth_bin" --root "$work/root" rm -f -v $ids >/dev/null 2>&1 || true
    "$berth_bin" --root "$work/root" network rm demo-net >/dev/null 2>&1 || true
    grep " $work/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  fi
  ip link del berthdemo0 2>/dev/null || true
  nft delete table inet berthdemo 2>/dev/null || true
  nft delete table ip berthdemo 2>/dev/null || true
  registry_stop || true
  rm -rf "$work"
  [ -z "$cg" ] || rmdir "$cg" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

berth() { "$berth_bin" --root "$work/root" "$@"; }
step() { printf '\n\033[1m$ berth %s\033[0m\n' "$*"; }

registry_start
port=${REGISTRY##*:}
echo "demo: building a busybox image offline and pushing it to $REGISTRY"
"$here/scripts/oci-image.sh" "$work/busybox-oci" latest >/dev/null
skopeo copy -q --insecure-policy --dest-tls-verify=false \
  "oci:$work/busybox-oci:latest" "docker://$REGISTRY/demo/busybox:latest"
ref=127.0.0.1:$port/demo/busybox:latest
export DOCKER_CONFIG=$work/docker-config

step pull "$ref";                berth pull "$ref"
step pull "$ref" "(again)";      berth pull "$ref"
step images;                     berth images
step image inspect --format "'{{.Id}} {{.Os}}/{{.Architecture}} {{json .Config.Cmd}}'" "$ref"
berth image inspect --format '{{.Id}} {{.Os}}/{{.Architecture}} {{json .Config.Cmd}}' "$ref"
step history "$ref";             berth history "$ref"
step run --rm "$ref" sh -c "'echo hello from \$(hostname), uid \$(id -u)'"
berth run --rm "$ref" sh -c 'echo hello from $(hostname), uid $(id -u)'
step run -d --name demo-sleeper "$ref" sh -c "'echo started; sleep 300'"
berth run -d --name demo-sleeper "$ref" sh -c 'echo started; sleep 300'
step ps;                         berth ps
step exec demo-sleeper grep CapEff /proc/self/status; berth exec demo-sleeper grep CapEff /proc/self/status
step logs demo-sleeper;          berth logs demo-sleeper
step stop -t 1 demo-sleeper;     berth stop -t 1 demo-sleeper
step ps -a;                      berth ps -a
step rm demo-sleeper;            berth rm demo-sleeper
step tag "$ref" 127.0.0.1:$port/demo/copy:v1; berth tag "$ref" "127.0.0.1:$port/demo/copy:v1"
step push 127.0.0.1:$port/demo/copy:v1;       berth push "127.0.0.1:$port/demo/copy:v1"
step images --format "'table {{.Repository}}\\t{{.Tag}}\\t{{.Size}}'"
berth images --format 'table {{.Repository}}\t{{.Tag}}\t{{.Size}}'
step save -o busybox.tar "$ref"; berth save -o "$work/busybox.tar" "$ref"
step rmi "$ref" 127.0.0.1:$port/demo/copy:v1; berth rmi "$ref" "127.0.0.1:$port/demo/copy:v1"
step load -i busybox.tar;        berth load -i "$work/busybox.tar"

echo; echo "demo: networks: a web server reached by name and through a published port"
step network create demo-net;    berth network create demo-net
web='mkdir -p /www && echo "hello from $(hostname)" > /www/index.html && exec httpd -f -p 80 -h /www'
step run -d --name web --network demo-net -p 127.0.0.1:18080:80 "$ref" sh -c "'$web'"
berth run -d --name web --network demo-net -p 127.0.0.1:18080:80 "$ref" sh -c "$web"
step port web;                   berth port web
step inspect --format "'{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}'" web
berth inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' web
get='printf "GET / HTTP/1.0\r\n\r\n" | nc web 80 | tail -n1'
step run --rm --network demo-net "$ref" sh -c "'$get'"
berth run --rm --network demo-net "$ref" sh -c "$get"
echo "(from the host, 127.0.0.1:18080: connect() is redirected to the container, no per-packet NAT)"
(
  [ -z "$cg" ] || echo $BASHPID > "$cg/cgroup.procs"
  exec 3<>/dev/tcp/127.0.0.1/18080
  printf 'GET / HTTP/1.0\r\n\r\n' >&3
  tail -n1 <&3
)
step stats --no-stream web;      berth stats --no-stream web
step diff web;                   berth diff web
step commit -m "'add index'" web demo/web:v1; berth commit -m "add index" web demo/web:v1
step cp web:/www/index.html -;   berth cp web:/www/index.html - | tar -tvf -
step rm -f web;                  berth rm -f web
step network ls;                 berth network ls

echo; echo "demo: volumes: data outlives the container"
step volume create demo-data;    berth volume create demo-data
step run --rm -v demo-data:/data "$ref" sh -c "'echo saved at \$(date) > /data/note'"
berth run --rm -v demo-data:/data "$ref" sh -c 'echo saved at $(date) > /data/note'
step run --rm -v demo-data:/data:ro "$ref" sh -c "'cat /data/note; touch /data/x'"
berth run --rm -v demo-data:/data:ro "$ref" sh -c 'cat /data/note; touch /data/x' || true
step volume ls;                  berth volume ls
step system df;                  berth system df
step volume rm demo-data;        berth volume rm demo-data
step network rm demo-net;        berth network rm demo-net
echo
echo "demo: done; registry stopped and $work removed"
