#!/usr/bin/env bash
# berth demo: builds a busybox image offline, serves it from a throwaway
# docker-registry on a free loopback port, and walks through the image
# commands. Uses target/release/berth (run `make build` first; `make demo`
# does). Leaves nothing behind: the registry is stopped and every temp dir
# removed on exit, also on failure or Ctrl-C.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
berth_bin=${BERTH_BIN:-$here/target/release/berth}
[ -x "$berth_bin" ] || { echo "demo: $berth_bin not found; run 'make build' first" >&2; exit 1; }
command -v docker-registry >/dev/null || { echo "demo: docker-registry missing; run scripts/install-deps.sh" >&2; exit 1; }
command -v skopeo >/dev/null || { echo "demo: skopeo missing; run scripts/install-deps.sh" >&2; exit 1; }

work=$(mktemp -d /tmp/berth-demo.XXXXXX)
. "$here/scripts/registry.sh"
cleanup() {
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
