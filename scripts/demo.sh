#!/usr/bin/env bash
# berth demo: builds a busybox image offline, serves it from a throwaway
# docker-registry on a free loopback port, and walks through the image
# commands. Uses target/release/berth (run `make build` first; `make demo`
# does). Leaves nothing behind: the registry is stopped and every temp dir
# removed on exit, also on failure or Ctrl-C.
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
cleanup() {
  if [ -d "$work/root" ]; then
    "$berth_bin" --root "$work/root" rm -f demo-sleeper >/dev/null 2>&1 || true
    grep " $work/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  fi
  registry_stop || true
  rm -rf "$work"
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
step system df;                  berth system df
echo
echo "demo: done; registry stopped and $work removed"
