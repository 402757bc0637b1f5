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
reg_pid=""
cleanup() {
  if [ -n "$reg_pid" ] && kill -0 "$reg_pid" 2>/dev/null; then
    kill "$reg_pid" 2>/dev/null || true
    wait "$reg_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

berth() { "$berth_bin" --root "$work/root" "$@"; }
step() { printf '\n\033[1m$ berth %s\033[0m\n' "$*"; }

# A free loopback port: bind port 0 and read what the kernel chose.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/registry.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
log:
  level: error
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
for _ in $(seq 50); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done

echo "demo: building a busybox image offline and pushing it to 127.0.0.1:$port"
"$here/scripts/make-busybox-oci.sh" "$work/busybox-oci.tar" busybox:latest
skopeo copy -q --insecure-policy --dest-tls-verify=false \
  "oci-archive:$work/busybox-oci.tar" "docker://127.0.0.1:$port/demo/busybox:latest"
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
