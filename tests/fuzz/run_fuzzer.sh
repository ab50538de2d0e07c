#!/usr/bin/env bash
# Runs one libFuzzer binary on its seed corpus for a bounded time.
# Usage: run_fuzzer.sh FUZZER SEED_DIR SECONDS [RUNS] [extra libFuzzer flags...]
# New inputs go to a scratch corpus (the committed seeds are only read); a crash, leak,
# sanitizer report, timeout or violated property (trap) leaves its input as
# ${RTDA_FUZZ_ARTIFACTS:-<fuzzer dir>/fuzz-artifacts}/<fuzzer>-crash-<sha1> and fails.
set -euo pipefail
fuzzer=$1 seeds=$2 seconds=$3 runs=${4:-1000000}
shift 3; [ $# -gt 0 ] && shift
name=$(basename "$fuzzer")
artifacts=${RTDA_FUZZ_ARTIFACTS:-$(dirname "$fuzzer")/fuzz-artifacts}
mkdir -p "$artifacts"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/rtda-$name-corpus.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
# Reproducers of bugs found before (tests/fuzz/crashes/<fuzzer>/): each must pass now.
crashes=$(dirname "$0")/crashes/$name
if [ -d "$crashes" ] && [ -n "$(ls -A "$crashes")" ]; then
  echo "$name: $(ls "$crashes" | wc -l) reproducer(s) from $crashes"
  if ! "$fuzzer" -runs=1 "$@" "$crashes"/* >"$scratch.crashes.log" 2>&1; then
    grep -E "ERROR|SUMMARY|property violated|fuzz service" "$scratch.crashes.log" | head -n 5 >&2
    echo "$name: FAILED: a reproducer under $crashes still fails (see crashes/README.md)" >&2
    rm -f "$scratch.crashes.log"
    exit 1
  fi
  rm -f "$scratch.crashes.log"
fi
echo "$name: ${seconds} s (at most $runs runs) on $(ls "$seeds" | wc -l) seeds from $seeds"
set +e
"$fuzzer" -max_total_time="$seconds" -runs="$runs" -timeout=20 -rss_limit_mb=2560 \
  -print_final_stats=1 -error_exitcode=1 -timeout_exitcode=1 -artifact_prefix="$artifacts/$name-" "$@" "$scratch" "$seeds" 2>&1 |
  grep -v -E '^#[0-9]+.*(NEW|REDUCE|pulse)|# Uses: |^\s+NEW_FUNC' 
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ]; then
  echo "$name: FAILED (exit $rc); reproducer(s) under $artifacts:" >&2
  ls -1 "$artifacts" | grep "^$name-" >&2 || true
  echo "reproduce: $fuzzer $artifacts/$name-<file>" >&2
fi
exit "$rc"
