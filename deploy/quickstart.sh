#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine: installs what is missing, configures,
# builds, then runs the demo or the whole test suite.
#
#   bash deploy/quickstart.sh demo [rtda demo options...]
#   bash deploy/quickstart.sh test [ctest options...]
#
# Environment: BUILD_DIR (default build), JOBS (default: all cores), RTDA_CMAKE_ARGS (extra
# configure arguments, e.g. -DRTDA_SANITIZE=ON), RTDA_WITH_CUDA=1 (install-deps --cuda: the
# NVIDIA toolchain as well), RTDA_NO_HIP=1 (install-deps --no-hip).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
what=${1:-}
[ $# -gt 0 ] && shift
case "$what" in
  demo|test|build) ;;
  *) echo "usage: bash deploy/quickstart.sh demo|test|build [options...]" >&2; exit 2 ;;
esac

build=${BUILD_DIR:-$root/build}
jobs=${JOBS:-$(nproc)}

"$here/install-deps.sh"
# shellcheck disable=SC2086
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${RTDA_CMAKE_ARGS:-}
cmake --build "$build" -j "$jobs"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
case "$what" in
  demo) exec "$build/client/rtda" demo "$@" ;;
  test) cd "$build" && exec ctest --output-on-failure -j "$jobs" "$@" ;;
  build) echo "built: $build/client/rtda" ;;
esac
