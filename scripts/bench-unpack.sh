#!/usr/bin/env bash
# Layer unpack throughput: berth's one-pass ingest (blob + sha256 x2 +
# gunzip + secure unpack + syncfs) against `gzip -dc | tar -x` and
# `pigz -dc | tar -x` on the same ~200 MB gzip layer made from /usr.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${BENCH_DIR:-/var/tmp/berth-bench-unpack}
mkdir -p "$work"
layer=$work/layer.tar.gz
if [ ! -s "$layer" ]; then
  echo "making $layer from /usr/lib/x86_64-linux-gnu ..."
  tar -C / -cf - usr/lib/x86_64-linux-gnu | tee >(sha256sum | cut -d' ' -f1 > "$work/diff_id") | gzip -6 > "$layer"
fi
diff_id=sha256:$(cat "$work/diff_id")
digest=sha256:$(sha256sum "$layer" | cut -d' ' -f1)
ls -l "$layer"
t() { local s e; s=$(date +%s.%N); "$@"; e=$(date +%s.%N); echo "$e - $s" | bc; }
clean() { rm -rf "$work/x"; mkdir -p "$work/x"; sync; }
clean; echo "gzip -dc > /dev/null:   $(t sh -c "gzip -dc '$layer' > /dev/null") s"
clean; echo "gzip -dc | tar -x:      $(t sh -c "gzip -dc '$layer' | tar -x -C '$work/x' && sync") s"
clean; echo "pigz -dc | tar -x:      $(t sh -c "pigz -dc '$layer' | tar -x -C '$work/x' && sync") s"
rm -rf "$work/x"
sync
BERTH_BENCH_LAYER=$layer BERTH_BENCH_DIGEST=$digest BERTH_BENCH_DIFF_ID=$diff_id BERTH_BENCH_DIR=$work \
  cargo test --release --bin berth bench_ -- --ignored --nocapture --test-threads 1 2>&1 | grep -E "berth ingest|^unpack|panicked|test result"
