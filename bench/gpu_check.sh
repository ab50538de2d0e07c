#!/usr/bin/env bash
# The GPU check (docs/gpu.md): verifies rtda's GPU path in one call on a machine with an
# NVIDIA GPU, its driver, nvcc, CMake and Python (numpy, h5py), and neither network nor
# Debian's packages. What it runs comes from bench/gpu_bundle.sh (built on Debian beforehand).
#   1. every gpu-labelled parity test (each device stage against its CPU oracle), with the
#      kernels as Debian's nvcc built them and again as this machine's nvcc rebuilds them
#      from the tree's sources;
#   2. short experiments (ViT + EnSF, SQG + LETKF) with --device gpu and --device cpu: the
#      archives compared, device_host_bytes against docs/gpu.md's residency promise;
#   3. timings (bench/gpu_timing): N = 64 / 20 members / 8192 observations, N = 256 / 40,
#      and the largest N whose analysis fits in a minute; rates against the ceilings.
# It writes report.txt, parity.csv, experiments.csv, timings.csv, env.txt and log.txt into
# --out and exits 0 when every parity test and experiment agrees.
#
# Usage: bash bench/gpu_check.sh [--bundle FILE|DIR | --build-dir DIR] [--out DIR] [--dry-run]
#   --bundle FILE|DIR  bench/gpu_bundle.sh's output (default .gpu/rtda-gpu-bundle.tar.xz)
#   --build-dir DIR    take the programs from a build tree instead (the dry-run test does)
#   --out DIR          where the report goes (default gpu-check-out)
#   --dry-run          no GPU needed: everything runs except the device work (tests skip,
#                      experiments and timings run on the CPU, small), so the script itself
#                      is tested on machines without a GPU
#   RTDA_GPU_CHECK_BUDGET  seconds for the whole check (default 450; later steps shrink)
#   RTDA_PYTHON            the Python with numpy and h5py (default: python3 on PATH)
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bundle=$root/.gpu/rtda-gpu-bundle.tar.xz
build_dir=""
out=$PWD/gpu-check-out
dry=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) bundle=$2; shift 2 ;;
    --build-dir) build_dir=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
budget=${RTDA_GPU_CHECK_BUDGET:-450}
start=$SECONDS
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d /tmp/rtda-gpu-check.XXXXXX)
log=$out/log.txt
: >"$log"
py=${RTDA_PYTHON:-$(command -v python3)}
helper="$py $root/bench/gpu_check.py"
status=0

say() { echo "gpu_check: $*" | tee -a "$log"; }
left() { echo $((budget - (SECONDS - start))); }

# ---- what runs: a bundle (lib/ holds what the machine lacks) or a build tree
if [ -n "$build_dir" ]; then
  build_dir=$(cd "$build_dir" && pwd)
  bin=$work/bin
  lib=$work/lib
  mkdir -p "$bin" "$lib"
  ln -s "$build_dir/client/rtda" "$bin/rtda"
  [ -x "$build_dir/bench/gpu_timing" ] && ln -s "$build_dir/bench/gpu_timing" "$bin/gpu_timing"
  (cd "$build_dir" && ctest -L gpu --show-only=json-v1) >"$work/tests.json" 2>>"$log"
  $helper list-tests "$work/tests.json" >"$work/tests.tsv"
  while IFS=$'\t' read -r prog _ _; do
    found=$(find "$build_dir/tests" -type f -name "$prog" -perm -u+x | head -n1)
    [ -n "$found" ] && ln -sf "$found" "$bin/$prog"
  done <"$work/tests.tsv"
  tests_tsv=$work/tests.tsv
  include=$(find /usr/include /usr/local/include -maxdepth 1 -name Random123 -type d 2>/dev/null | head -n1)
  include=${include%/Random123}
  kernels_txt=$build_dir/gpu_kernels.txt
  source_of="build tree $build_dir"
else
  if [ -f "$bundle" ]; then
    mkdir -p "$work/bundle"
    tar -C "$work/bundle" -xJf "$bundle" || { say "cannot unpack $bundle"; exit 1; }
    bundle=$work/bundle
  fi
  [ -d "$bundle/bin" ] || { say "no bundle at $bundle (make one with bench/gpu_bundle.sh)"; exit 1; }
  bin=$bundle/bin
  lib=$bundle/lib
  tests_tsv=$bundle/tests.tsv
  include=$bundle/include
  kernels_txt=$bundle/gpu_kernels.txt
  source_of="bundle ($(head -n1 "$bundle/BUILD_INFO" 2>/dev/null); $(sed -n 2p "$bundle/BUILD_INFO" 2>/dev/null))"
fi
# The programs find their libraries through LD_LIBRARY_PATH; Python and the system tools
# keep the machine's own.
run() { LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"; }

# ---- the machine
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "mode: $([ $dry = 1 ] && echo 'dry run (no device work)' || echo 'GPU check')"
  echo "programs: $source_of"
  echo "git: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "host: $(uname -srm); $(ldd --version 2>/dev/null | head -n1)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') x $(nproc)"
  if command -v nvidia-smi >/dev/null; then
    echo "gpu: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1)"
    echo "gpu detail: $(nvidia-smi --query-gpu=compute_cap,driver_version,memory.total,clocks.max.sm,clocks.max.memory --format=csv,noheader | head -n1)"
  else
    echo "gpu: none (no nvidia-smi)"
  fi
  echo "nvcc: $(command -v nvcc >/dev/null && nvcc --version | tail -n2 | head -n1 || echo none)"
  echo "python: $($py --version 2>&1)"
} >"$out/env.txt"
cat "$out/env.txt" >>"$log"

missing=$(for f in "$bin"/*; do run ldd "$f" 2>&1 | grep 'not found'; done | sort -u)
if [ -n "$missing" ]; then
  say "libraries missing on this machine:"
  echo "$missing" | tee -a "$log"
  status=1
fi
if [ $dry = 0 ] && ! command -v nvidia-smi >/dev/null; then
  say "no nvidia-smi: not a GPU machine (use --dry-run to test the script)"
  exit 1
fi
device=gpu
[ $dry = 1 ] && device=cpu

# ---- 1a. the kernels from this machine's nvcc (same sources and flags as CMake's)
local_lib=""
ccbin=""
if command -v nvcc >/dev/null && [ -f "$kernels_txt" ]; then
  arch=90
  if [ $dry = 0 ]; then
    arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n1 | tr -d '. ')
  fi
  flags=$(sed -n 's/^flags //p' "$kernels_txt")
  # The recorded host compiler belongs to the recorded nvcc (nvcc 11.8 needs an older one).
  if [ "$(sed -n 's/^nvcc //p' "$kernels_txt")" = "$(command -v nvcc)" ]; then
    ccbin=$(sed -n 's/^ccbin //p' "$kernels_txt")
    [ -n "$ccbin" ] && flags="$flags -ccbin $ccbin"
  fi
  mkdir -p "$work/kernels"
  t0=$SECONDS
  pids=()
  while read -r src; do
    name=$(basename "$src" .hip)
    # shellcheck disable=SC2086
    nvcc $flags -Xcompiler=-fPIC -gencode "arch=compute_$arch,code=[sm_$arch,compute_$arch]" \
      -I"$root/kernels" ${include:+-I"$include"} -c "$root/$src" -o "$work/kernels/$name.o" \
      </dev/null >>"$log" 2>&1 &
    pids+=($!)
  done < <(sed -n 's/^source //p' "$kernels_txt")
  ok=1
  for p in "${pids[@]}"; do wait "$p" || ok=0; done
  if [ $ok = 1 ] && [ -f "$lib/librtda_gpu_kernels.so" ]; then
    mkdir -p "$work/lib-local"
    # shellcheck disable=SC2086
    nvcc ${ccbin:+-ccbin $ccbin} -shared -o "$work/lib-local/librtda_gpu_kernels.so" \
      "$work"/kernels/*.o >>"$log" 2>&1 \
      && local_lib=$work/lib-local
  fi
  if [ $ok = 1 ]; then
    say "kernels rebuilt by $(nvcc --version | tail -n2 | head -n1 | sed 's/.*release/release/') for sm_$arch in $((SECONDS - t0)) s${local_lib:+ (the parity tests run with them too)}"
  else
    say "the kernels do not build with this machine's nvcc (log.txt has the errors)"
    status=1
  fi
else
  say "no nvcc here or no kernel list: kernels not rebuilt"
fi

# ---- 1. parity tests
export RTDA_TEST_VIT_WEIGHTS=$root/configs/weights/vit-n64.h5
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo "kernels,program,ranks,tests,passed,failed,skipped,seconds,note" >"$out/parity.csv"
parity() {  # kernels label, library path in front of the bundle's
  local label=$1 front=$2 prog args ranks xml t0 rc
  # The programs get /dev/null as input: mpiexec would otherwise read the rest of the list.
  while IFS=$'\t' read -r prog args ranks; do
    xml=$work/$label-$prog-$ranks.xml
    rm -f "$xml"
    t0=$SECONDS
    if [ "$ranks" != 0 ]; then
      if ! command -v mpiexec >/dev/null; then
        echo "$label,$prog,$ranks,0,0,0,0,0,not run: no mpiexec on this machine" >>"$out/parity.csv"
        continue
      fi
      # shellcheck disable=SC2086
      LD_LIBRARY_PATH="$front${front:+:}$lib" timeout 300 mpiexec -n "$ranks" --oversubscribe \
        "$bin/$prog" $args --gtest_output="xml:$xml" </dev/null >>"$log" 2>&1
    else
      LD_LIBRARY_PATH="$front${front:+:}$lib" timeout 300 "$bin/$prog" \
        --gtest_output="xml:$xml" </dev/null >>"$log" 2>&1
    fi
    rc=$?
    $helper junit "$xml" "$label" "$prog" "$ranks" "$((SECONDS - t0))" >>"$out/parity.csv"
    [ $rc = 0 ] || status=1
  done <"$tests_tsv"
}
parity bundled ""
[ -n "$local_lib" ] && parity local "$local_lib"
say "parity tests done ($(($(wc -l <"$out/parity.csv") - 1)) runs)"

# ---- 2. experiments, gpu against cpu
echo "case,cycles,max_rel_diff,tolerance,rmse_rel_gap,rmse_cpu,rmse_gpu,device_host_bytes,verdict" \
  >"$out/experiments.csv"
cycles=20
common=(--set experiment.cycles=$cycles --set nature.spinup_days=10 --set model.fft_planning=estimate)
[ $dry = 1 ] && common=(--set experiment.cycles=2 --set nature.spinup_days=1 --set nature.states=3
  --set model.fft_planning=estimate)
vit=(--filter ensf --set model.kind=vit --set "surrogate.weights=$RTDA_TEST_VIT_WEIGHTS")
sqg=(--filter letkf)
# Tolerances: the ViT runs in float32 on both sides but sums differently, so the EnSF cycle
# drifts at ~1e-3 of the field (docs/gpu.md); the SQG + LETKF cycle agrees to ~1e-10 per
# analysis, grown by the forecasts in between.
[ $dry = 1 ] && export RTDA_GPU_CHECK_DRY=1
for spec in "vit_ensf:2e-2:yes" "sqg_letkf:1e-6:no"; do
  IFS=: read -r case_name tol residency <<<"$spec"
  if [ "$case_name" = vit_ensf ]; then args=("${vit[@]}"); else args=("${sqg[@]}"); fi
  t0=$SECONDS
  run "$bin/rtda" experiment "${args[@]}" "${common[@]}" --device cpu --out "$work/$case_name-cpu.h5" \
    >>"$log" 2>&1 || { say "$case_name: the CPU experiment failed"; status=1; continue; }
  if [ $dry = 1 ]; then
    # No device: --device gpu must refuse, saying why, and the comparison runs CPU vs CPU.
    if run "$bin/rtda" experiment "${args[@]}" "${common[@]}" --device gpu --out "$work/x.h5" \
      >"$work/refusal.txt" 2>&1; then
      say "$case_name: --device gpu ran without a GPU"; status=1
    elif ! grep -q "no GPU is usable" "$work/refusal.txt"; then
      say "$case_name: --device gpu failed without saying why: $(tail -n1 "$work/refusal.txt")"
      status=1
    fi
    cp "$work/$case_name-cpu.h5" "$work/$case_name-gpu.h5"
  else
    run "$bin/rtda" experiment "${args[@]}" "${common[@]}" --device gpu \
      --out "$work/$case_name-gpu.h5" >>"$log" 2>&1 \
      || { say "$case_name: the GPU experiment failed"; status=1; continue; }
  fi
  $helper compare "$case_name" "$work/$case_name-cpu.h5" "$work/$case_name-gpu.h5" "$tol" "$residency" \
    >>"$out/experiments.csv" || status=1
  say "$case_name: $((SECONDS - t0)) s"
done

# ---- 3. timings
echo "case,entry,device,n,members,observations,repeats,median_ms,min_ms,bytes,flops,gb_per_s,gflop_per_s,model,note" \
  >"$out/timings.csv"
timing() {  # gpu_timing arguments...; appends its rows
  local csv=$work/timing.csv
  rm -f "$csv"
  run timeout 240 "$bin/gpu_timing" --device "$device" --vit-weights "$RTDA_TEST_VIT_WEIGHTS" \
    --csv "$csv" "$@" >>"$log" 2>&1
  local rc=$?
  [ -f "$csv" ] && tail -n +2 "$csv" >>"$out/timings.csv"
  return $rc
}
if [ ! -x "$bin/gpu_timing" ]; then
  say "no gpu_timing program: timings skipped"
elif [ $dry = 1 ]; then
  timing --n 16 --members 4 --repeats 1 --what letkf,ensf,cycle,copy --copy-mib 16
else
  timing --n 64 --members 20 --observations 8192 --repeats 10 --what copy,letkf,ensf,vit,cycle
  [ "$(left)" -gt 120 ] && timing --n 256 --members 40 --repeats 5 --what letkf,ensf,cycle
  # The largest N whose analysis (either filter) stays within a minute.
  for n in 512 1024 2048; do
    [ "$(left)" -gt 150 ] || { say "timings: budget spent before N = $n"; break; }
    timing --n "$n" --members 40 --repeats 1 --warmup 0 --what ensf,letkf --max-seconds 60 \
      || { say "timings: N = $n did not finish"; break; }
  done
fi

$helper report "$out" >>"$log"
cat "$out/report.txt"
rm -rf "$work"
say "done in $((SECONDS - start)) s: $([ $status = 0 ] && echo 'all checks passed' || echo 'SOME CHECKS FAILED (see report.txt, log.txt)')"
exit $status
