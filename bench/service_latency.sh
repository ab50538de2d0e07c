#!/usr/bin/env bash
# Cycle latency and overhead of the real-time service, end to end (target: overhead
# <= 5 ms p99). Runs `rtda demo` once per filter and reports p50/p99 of the per-cycle
# latency ("last observation in -> published") and overhead (latency minus forecast wait
# and analysis compute), parsed from the demo's per-cycle lines with cycle 0 skipped (its
# worker plans FFTs first), next to the demo's own summary line (which includes cycle 0).
#
#   bench/service_latency.sh [extra `rtda demo` options...]
#
# Environment: RTDA (the rtda program; default build/client/rtda next to this script's repo),
# FILTERS (default "letkf ensf"), CYCLES (30), WINDOW_SECONDS (1.5), OMP_NUM_THREADS (1),
# KEEP=1 keeps the demo directories and logs (printed), else they are removed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
RTDA="${RTDA:-$root/build/client/rtda}"
FILTERS="${FILTERS:-letkf ensf}"
CYCLES="${CYCLES:-30}"
WINDOW_SECONDS="${WINDOW_SECONDS:-1.5}"
cpus="$(nproc)"  # before OMP_NUM_THREADS is set: nproc honours it
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

if [[ ! -x "$RTDA" ]]; then
  echo "service_latency.sh: $RTDA not found or not executable (build the project, or set RTDA)" >&2
  exit 2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/rtda-service-latency.XXXXXX")"
cleanup() { [[ "${KEEP:-0}" == 1 ]] || rm -rf "$work"; }
trap cleanup EXIT

# p50/p99 with the demo's rule: sorted value at index round(q * (n - 1)).
quantiles() {
  sort -g | awk '{ v[NR - 1] = $1 }
    END {
      if (NR == 0) { print "n/a n/a 0"; exit }
      i50 = int(0.5 * (NR - 1) + 0.5); i99 = int(0.99 * (NR - 1) + 0.5)
      printf "%s %s %d\n", v[i50], v[i99], NR
    }'
}

echo "host: $cpus CPUs, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p'), OMP_NUM_THREADS=$OMP_NUM_THREADS"
table="| filter | cycles parsed | latency p50 ms | latency p99 ms | overhead p50 ms | overhead p99 ms | demo summary (all cycles) |
|---|---:|---:|---:|---:|---:|---|"
status=0
for filter in $FILTERS; do
  out="$work/demo-$filter.out"
  cmd=("$RTDA" demo --dir "$work/demo-$filter" --cycles "$CYCLES" --window-seconds "$WINDOW_SECONDS"
       --set nature.spinup_days=1 --set "server.filter=$filter" "$@")
  echo "== $filter: OMP_NUM_THREADS=$OMP_NUM_THREADS ${cmd[*]}"
  start=$SECONDS
  if ! "${cmd[@]}" >"$out" 2>&1; then
    echo "service_latency.sh: rtda demo ($filter) failed; the last lines:" >&2
    tail -n 20 "$out" >&2
    status=1
  fi
  echo "   finished in $((SECONDS - start)) s; output $out"
  # Per-cycle lines: "cycle    N  t= ... latency   123.4 ms (overhead  1.23 ms)".
  cycles_file="$work/cycles-$filter.txt"
  sed -n -E 's/^cycle +([0-9]+) .*latency +([0-9.eE+-]+|nan|inf) ms \(overhead +([0-9.eE+-]+|nan|inf) ms\).*/\1 \2 \3/p' \
    "$out" | awk '$1 != 0' >"$cycles_file"
  read -r lat50 lat99 n < <(awk '{ print $2 }' "$cycles_file" | quantiles)
  read -r ovh50 ovh99 _ < <(awk '{ print $3 }' "$cycles_file" | quantiles)
  summary="$(grep -m1 -E '^latency \(last observation in' "$out" |
    sed -E 's/^latency \(last observation in -> published\): //' || true)"
  grep -m1 -E '^== summary' "$out" || true
  echo "   cycles 1..: latency p50 $lat50 ms p99 $lat99 ms; overhead p50 $ovh50 ms p99 $ovh99 ms ($n cycles)"
  table+=$'\n'"| $filter | $n | $lat50 | $lat99 | $ovh50 | $ovh99 | ${summary:-missing} |"
done
echo
echo "$table"
[[ "${KEEP:-0}" == 1 ]] && echo "kept: $work"
exit $status
