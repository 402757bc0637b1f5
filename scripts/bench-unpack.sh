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
# Wall time and user+sys CPU time (the latter stays comparable when other
# work shares the machine).
TIMEFORMAT='%R s wall, %U+%S s cpu'
clean() { rm -rf "$work/x"; mkdir -p "$work/x"; sync; }
clean; echo -n "gzip -dc > /dev/null:   "; time (gzip -dc "$layer" > /dev/null)
clean; echo -n "gzip -dc | tar -x:      "; time (gzip -dc "$layer" | tar -x -C "$work/x" && sync)
clean; echo -n "pigz -dc | tar -x:      "; time (pigz -dc "$layer" | tar -x -C "$work/x" && sync)
rm -rf "$work/x"
sync
BERTH_BENCH_LAYER=$layer BERTH_BENCH_DIGEST=$digest BERTH_BENCH_DIFF_ID=$diff_id BERTH_BENCH_DIR=$work \
  cargo test --release --bin berth bench_ -- --ignored --nocapture --test-threads 1 2>&1 | grep -E "berth ingest|^unpack|panicked|test result"
