#!/usr/bin/env bash
# OCI runtime validation of `berth runtime`.
#
#   scripts/oci-validation.sh
#       Builds berth (debug) and runs tests/oci_validation_e2e.rs: the
#       programs of runtime-tools' validation/ rebuilt against berth, one
#       test per program, in parallel. Prints each program's TAP and a
#       summary: passed / failed / excluded (with the reason).
#
#   scripts/oci-validation.sh --wrapper DIR [STATE_ROOT]
#       Writes DIR/berth-oci-runtime, the RUNTIME to give runtime-tools'
#       own validation programs (from a runtime-tools checkout:
#       `RUNTIME=DIR/berth-oci-runtime make localvalidation`). It runs
#       `berth runtime --root STATE_ROOT` (default DIR/state), so the suite's
#       containers stay out of berth's real state. BERTH overrides the binary.
#
# Every test removes its containers, cgroups and temp dirs (Drop guards),
# also when it fails; nothing else is created here.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--wrapper" ]; then
  dir=${2:?usage: $0 --wrapper DIR [STATE_ROOT]}
  state=${3:-$dir/state}
  berth=${BERTH:-$PWD/target/debug/berth}
  mkdir -p "$dir"
  # The validation programs exec RUNTIME by path with runc's arguments.
  printf '#!/bin/sh\nexec %q runtime --root %q "$@"\n' "$berth" "$state" >"$dir/berth-oci-runtime"
  chmod 755 "$dir/berth-oci-runtime"
  echo "$dir/berth-oci-runtime"
  exit 0
fi

./scripts/install-deps.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s)
set +e
# Status lines as they finish; each program's TAP once all have run.
cargo nextest run --test oci_validation_e2e --no-fail-fast --status-level pass \
  --final-status-level none --success-output final --failure-output final 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
secs=$(( $(date +%s) - start ))

echo
echo "# OCI runtime validation summary (${secs}s)"
results=$(grep -E '^ +(PASS|FAIL) \[' "$log" | grep -v exclusions_are_documented |
  sed -E 's/^ +PASS .*oci_validation_e2e ([a-z_]+::)*/ok - /; s/^ +FAIL .*oci_validation_e2e ([a-z_]+::)*/not ok - /' |
  sort -u || true)
skips=$(grep -E '^ +ok - # SKIP ' "$log" | sed -E 's/^ +//' | sort -u || true)
echo "$results"
[ -z "$skips" ] || echo "$skips"
pass=$(grep -c '^ok - ' <<<"$results" || true)
fail=$(grep -c '^not ok - ' <<<"$results" || true)
skip=$(grep -c . <<<"$skips" || true)
echo "$pass passed, $fail failed, $skip skipped"
exit "$rc"
