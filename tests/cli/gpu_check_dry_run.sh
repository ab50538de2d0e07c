#!/usr/bin/env bash
# bench/gpu_check.sh --dry-run on this build: the script runs end to end without a GPU and
# writes its report; then the report must list every gpu-labelled test program, both
# experiments and the timing rows, and a broken bundle must make the check fail.
# Usage: gpu_check_dry_run.sh BUILD_DIR OUT_DIR
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$1
out=$2
rm -rf "$out"
fail() { echo "gpu_check_dry_run: $*" >&2; exit 1; }

bash "$root/bench/gpu_check.sh" --dry-run --build-dir "$build" --out "$out/ok" \
  || fail "the dry run failed (see $out/ok/log.txt)"
for f in report.txt parity.csv experiments.csv timings.csv env.txt log.txt; do
  [ -s "$out/ok/$f" ] || fail "no $f"
done
programs=$(cd "$build" && ctest -L gpu -N -V 2>/dev/null | sed -n 's/.*Test command: \([^ ]*\).*/\1/p' \
  | grep -v mpiexec | xargs -r -n1 basename | sort -u)
[ -n "$programs" ] || fail "ctest lists no gpu-labelled test"
for p in $programs; do
  grep -q ",$p," "$out/ok/parity.csv" || fail "parity.csv lacks $p"
done
grep -q '^vit_ensf,2,.*,PASS$' "$out/ok/experiments.csv" || fail "no passing vit_ensf row"
grep -q '^sqg_letkf,2,.*,PASS$' "$out/ok/experiments.csv" || fail "no passing sqg_letkf row"
for c in letkf ensf copy; do
  grep -q "^$c," "$out/ok/timings.csv" || fail "timings.csv has no $c row"
done
grep -q "1. Parity tests" "$out/ok/report.txt" || fail "report.txt lacks the parity section"

# A bundle whose rtda fails is a failed check, not a silent pass.
broken=$out/broken-bundle
mkdir -p "$broken/bin" "$broken/lib"
: >"$broken/tests.tsv"
printf '#!/bin/sh\nexit 3\n' >"$broken/bin/rtda"
chmod +x "$broken/bin/rtda"
if bash "$root/bench/gpu_check.sh" --dry-run --bundle "$broken" --out "$out/broken" >/dev/null 2>&1; then
  fail "a bundle whose rtda fails passed the check"
fi
echo "gpu_check_dry_run: ok"
