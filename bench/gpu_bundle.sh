#!/usr/bin/env bash
# Builds, on a Debian 12 machine with the CUDA toolkit (deploy/install-deps.sh --cuda), what
# bench/gpu_check.sh needs on a bare NVIDIA machine that has a driver, nvcc, CMake and Python
# but neither network nor Debian's packages (docs/gpu.md, "The GPU check"):
#   bin/      rtda, every gpu-labelled test program, gpu_timing
#   lib/      librtda_gpu_kernels.so (the kernels, which the check also rebuilds there with
#             that machine's nvcc) and the shared libraries the programs need that a bare
#             machine lacks (HDF5, FFTW, protobuf, ZeroMQ, Open MPI's, ...); glibc, libstdc++,
#             libgcc_s and the NVIDIA driver are the machine's own
#   include/  Random123's headers, for that rebuild; gpu_kernels.txt, its flags and sources
#   tests.tsv the gpu-labelled test runs: program, arguments, MPI ranks (0: no mpiexec)
# packed into one tar.xz (at most 60 MiB: the GPU machine takes 64 MiB of carried files).
#
# Usage: bash bench/gpu_bundle.sh [--out FILE] [--build-dir DIR]
#   default --out .gpu/rtda-gpu-bundle.tar.xz (ignored by git; name .gpu in the device's carry)
#   RTDA_NVCC selects nvcc (default: Debian's /usr/bin/nvcc, else the first on PATH).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$root/.gpu/rtda-gpu-bundle.tar.xz
build=$root/build-gpu-bundle
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "gpu_bundle.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done

nvcc=${RTDA_NVCC:-}
if [ -z "$nvcc" ]; then
  if [ -x /usr/bin/nvcc ]; then nvcc=/usr/bin/nvcc; else nvcc=$(command -v nvcc || true); fi
fi
if [ -z "$nvcc" ]; then
  echo "gpu_bundle.sh: no nvcc (run deploy/install-deps.sh --cuda, or set RTDA_NVCC)" >&2
  exit 1
fi

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRTDA_GPU=cuda \
  -DRTDA_NVCC="$nvcc" -DRTDA_GPU_SHARED_KERNELS=ON -DRTDA_GPU_CHECK_OTHER=OFF >/dev/null

# The gpu-labelled tests, from CTest's own list (argv as registered, labels, mpiexec or not).
tests_json=$(mktemp)
(cd "$build" && ctest -L gpu --show-only=json-v1) >"$tests_json" 2>/dev/null || true
if ! grep -q '"tests"' "$tests_json"; then
  # A fresh build tree has no CTestTestfile yet: build once so ctest can list.
  cmake --build "$build" -j "$(nproc)" --target rtda_gpu_kernels >/dev/null
  (cd "$build" && ctest -L gpu --show-only=json-v1) >"$tests_json"
fi
mapfile -t programs < <(python3 "$root/bench/gpu_check.py" list-tests "$tests_json" | cut -f1 | sort -u)
targets=(rtda rtda_gpu_kernels "${programs[@]}")
if grep -q 'bench/gpu_timing' "$build/build.ninja"; then targets+=(gpu_timing); fi
echo "gpu_bundle: building ${targets[*]}"
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"

stage=$(mktemp -d)
trap 'rm -rf "$stage" "$tests_json"' EXIT
mkdir -p "$stage/bin" "$stage/lib" "$stage/include"
cp "$build/client/rtda" "$stage/bin/"
if [ -x "$build/bench/gpu_timing" ]; then cp "$build/bench/gpu_timing" "$stage/bin/"; fi
for p in "${programs[@]}"; do
  found=$(find "$build/tests" -type f -name "$p" -perm -u+x | head -n1)
  if [ -n "$found" ]; then cp "$found" "$stage/bin/"; fi
done
cp "$build"/kernels/hip/librtda_gpu_kernels.so "$stage/lib/"
cp "$build/gpu_kernels.txt" "$stage/"

# tests.tsv: program, arguments, MPI ranks (0: run directly). A program's GoogleTest cases run
# in one process (its XML report names each); a test registered under mpiexec keeps its
# arguments and rank count.
python3 "$root/bench/gpu_check.py" list-tests "$tests_json" >"$stage/tests.tsv"

# The shared libraries a bare machine lacks: everything the programs load, minus the C
# library family, the C++ runtime and the NVIDIA driver, which are the machine's own.
keep_system='^(linux-vdso|ld-linux|libc\.|libm\.|libpthread|libdl\.|librt\.|libresolv|libutil|libstdc\+\+|libgcc_s|libcuda\.|libnvidia)'
for f in "$stage"/bin/* "$stage"/lib/librtda_gpu_kernels.so; do
  ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// {print $3}'
done | sort -u | while read -r lib; do
  base=$(basename "$lib")
  if [[ ! $base =~ $keep_system ]] && [ "$base" != librtda_gpu_kernels.so ]; then
    cp -L "$lib" "$stage/lib/$base"
  fi
done
# Open MPI opens its components at run time; they are needed only under mpiexec, which a
# bare machine has not: left out.

rand123=$(find /usr/include /usr/local/include -maxdepth 1 -name Random123 -type d | head -n1)
[ -n "$rand123" ] || { echo "gpu_bundle.sh: Random123 headers not found" >&2; exit 1; }
cp -r "$rand123" "$stage/include/"

{
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "nvcc: $("$nvcc" --version | tail -n2 | head -n1)"
  echo "git: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
} >"$stage/BUILD_INFO"
strip --strip-unneeded "$stage"/bin/* "$stage"/lib/*.so* 2>/dev/null || true

mkdir -p "$(dirname "$out")"
tar -C "$stage" -cf - . | xz -T0 -6 >"$out"
size=$(stat -c %s "$out")
echo "gpu_bundle: $out, $((size / 1024 / 1024)) MiB ($(du -sh "$stage" | cut -f1) unpacked)"
if [ "$size" -gt $((60 * 1024 * 1024)) ]; then
  echo "gpu_bundle.sh: the bundle is over 60 MiB; the GPU machine carries at most 64 MiB" >&2
  exit 1
fi
