#!/usr/bin/env bash
# The short fuzz run of the default test run (CTest test fuzz.short, label fuzz): configures
# and builds only the three fuzz targets in a clang++ build directory of their own
# (-DRTDA_FUZZ=ON: libFuzzer + ASan + UBSan, Release at -O1 -g, HIP off), then runs each for
# SECONDS on its seed corpus. Exit 77 (CTest SKIP) when clang++ or libFuzzer is missing:
# install them with deploy/install-deps.sh (clang, libclang-rt-14-dev).
# Usage: run_short.sh [--source DIR] [--build DIR] [--seconds S] [--jobs J]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source_dir=$(cd "$here/../.." && pwd)
build_dir=$source_dir/build-fuzz
seconds=10
jobs=${RTDA_FUZZ_JOBS:-2}
while [ $# -gt 0 ]; do
  case "$1" in
    --source) source_dir=$2; shift 2 ;;
    --build) build_dir=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    *) echo "run_short.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
cxx=${RTDA_FUZZ_CXX:-clang++}
cc=${RTDA_FUZZ_CC:-clang}
if ! command -v "$cxx" >/dev/null 2>&1 || ! command -v "$cc" >/dev/null 2>&1; then
  echo "SKIPPED: $cxx / $cc not found; the fuzzers need clang with libFuzzer" \
       "(deploy/install-deps.sh installs clang and libclang-rt-14-dev)"
  exit 77
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' \
  > "$probe/probe.cpp"
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe/probe.cpp" -o "$probe/probe" \
     >"$probe/log" 2>&1; then
  echo "SKIPPED: $cxx cannot link -fsanitize=fuzzer,address,undefined (libFuzzer or the" \
       "sanitizer runtimes missing: apt-get install libclang-rt-14-dev):"
  cat "$probe/log"
  exit 77
fi

t0=$(date +%s)
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S "$source_dir" -B "$build_dir" "${generator[@]}" \
    -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_C_COMPILER="$cc" -DRTDA_FUZZ=ON -DRTDA_GPU=OFF \
    -DRTDA_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Release \
    "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -g" "-DCMAKE_C_FLAGS_RELEASE=-O1 -g" \
    -DRTDA_FUZZ_SECONDS="$seconds" >"$build_dir.configure.log" 2>&1 ||
    { cat "$build_dir.configure.log"; exit 1; }
fi
cmake --build "$build_dir" --target fuzz_ingest fuzz_control fuzz_worker_link -j "$jobs" |
  tail -n 3
t1=$(date +%s)
echo "fuzz build: $((t1 - t0)) s"
status=0
for f in fuzz_ingest fuzz_control fuzz_worker_link; do
  bash "$here/run_fuzzer.sh" "$build_dir/tests/fuzz/$f" "$here/corpus/$f" "$seconds" || status=1
done
echo "fuzz short run: $(($(date +%s) - t1)) s of fuzzing, $(($(date +%s) - t0)) s in all"
exit "$status"
