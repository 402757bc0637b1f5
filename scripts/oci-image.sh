#!/usr/bin/env bash
# Builds an OCI image layout offline, for the demo and the benchmarks.
#   oci-image.sh OUT_DIR TAG [SRC_DIR ...]
# Layer 1 is a busybox-static rootfs; each SRC_DIR becomes one more gzip
# layer holding that directory at its own path. Output is deterministic for
# the same inputs (sorted names, fixed mtimes and owners).
set -euo pipefail
out=$1; tag=$2; shift 2
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$out/blobs/sha256"
gz() { if command -v pigz >/dev/null; then pigz -n -6; else gzip -n -6; fi; }
tarit() { tar --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner -C "$1" -cf - "${@:2}"; }

layer_descs=""; diff_ids=""; history=""
add_layer() { # $1 = tar stream file
  local diff comp size
  diff=$(sha256sum "$1" | cut -d' ' -f1)
  gz < "$1" > "$work/layer.gz"
  comp=$(sha256sum "$work/layer.gz" | cut -d' ' -f1)
  size=$(stat -c %s "$work/layer.gz")
  mv "$work/layer.gz" "$out/blobs/sha256/$comp"
  layer_descs="$layer_descs${layer_descs:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$comp\",\"size\":$size}"
  diff_ids="$diff_ids${diff_ids:+,}\"sha256:$diff\""
  history="$history${history:+,}{\"created\":\"2023-11-14T22:13:20Z\",\"created_by\":\"$2\"}"
}

root="$work/rootfs"
mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root" "$root/proc" "$root/sys" "$root/dev"
chmod 1777 "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
for a in sh ls cat echo sleep true false id env wget nc httpd ps top hostname mkdir rm mount sed grep head tail wc uname touch stat date vi; do
  ln -s busybox "$root/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\napp:x:1000:\nnogroup:x:65534:\n' > "$root/etc/group"
tarit "$root" . > "$work/l.tar"; add_layer "$work/l.tar" "busybox rootfs"
for src in "$@"; do
  rel=${src#/}
  tarit / "$rel" > "$work/l.tar"; add_layer "$work/l.tar" "COPY $src"
done
rm -f "$work/l.tar"

cfg="{\"architecture\":\"amd64\",\"os\":\"linux\",\"created\":\"2023-11-14T22:13:20Z\",\"config\":{\"Env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"],\"Cmd\":[\"sh\"],\"Labels\":{\"org.opencontainers.image.title\":\"berth-sample\"}},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$diff_ids]},\"history\":[$history]}"
printf '%s' "$cfg" > "$work/cfg"
cd_=$(sha256sum "$work/cfg" | cut -d' ' -f1); cs=$(stat -c %s "$work/cfg"); mv "$work/cfg" "$out/blobs/sha256/$cd_"
man="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$cd_\",\"size\":$cs},\"layers\":[$layer_descs]}"
printf '%s' "$man" > "$work/man"
md=$(sha256sum "$work/man" | cut -d' ' -f1); ms=$(stat -c %s "$work/man"); mv "$work/man" "$out/blobs/sha256/$md"
printf '{"imageLayoutVersion":"1.0.0"}' > "$out/oci-layout"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' "$md" "$ms" "$tag" > "$out/index.json"
echo "sha256:$md"
