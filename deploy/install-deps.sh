#!/usr/bin/env bash
# Installs every Debian 12 package rtda needs to build, test, run and plot.
# Idempotent: packages already present are skipped, so running it twice is cheap.
# Usage: deploy/install-deps.sh [--no-hip] [--cuda]   (as root, or with sudo available)
#   --no-hip  leave out hipcc and libamdhip64 (the AMD GPU toolchain; also RTDA_NO_HIP=1)
#   --cuda    add Debian's contrib and non-free components and install nvidia-cuda-toolkit
#             (nvcc 11.8, the NVIDIA GPU toolchain, about 1.6 GB; also RTDA_WITH_CUDA=1)
set -euo pipefail

with_hip=1
with_cuda=0
for arg in "$@"; do
  case "$arg" in
    --no-hip) with_hip=0 ;;
    --cuda) with_cuda=1 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "install-deps.sh: unknown option '$arg' (expected --no-hip or --cuda)" >&2; exit 2 ;;
  esac
done
[ "${RTDA_NO_HIP:-0}" = "1" ] && with_hip=0
[ "${RTDA_WITH_CUDA:-0}" = "1" ] && with_cuda=1

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config git ca-certificates clang-format
  # fuzzing (tests/fuzz, label fuzz): clang++ with libFuzzer and the ASan/UBSan runtimes
  clang libclang-rt-14-dev
  # wire protocol and transport
  libzmq3-dev cppzmq-dev libprotobuf-dev protobuf-compiler
  # parallelism
  libopenmpi-dev openmpi-bin
  # numerics
  libeigen3-dev libfftw3-dev librandom123-dev
  # files
  libhdf5-dev
  # command line, configuration, logging
  libcli11-dev libtomlplusplus-dev libspdlog-dev libfmt-dev
  # the server's metrics (prometheus-cpp's core: registry and text format) and systemd
  # (sd_notify readiness and watchdog, journald logging)
  prometheus-cpp-dev libsystemd-dev
  # tests and benchmarks
  libgtest-dev libbenchmark-dev
  # promtool, for the example alert rules' checks (deploy/prometheus)
  prometheus
  # python side: file-compatibility tests, the reference client, plots
  python3 python3-h5py python3-netcdf4 python3-xarray python3-numpy python3-matplotlib
  python3-zmq python3-protobuf
  # the CF conventions check of the files (tests/io/check_cf.py): the udunits2 program
  udunits-bin
  # the Python client package (client/python): venv + offline pip install, pandas feeders
  python3-venv python3-pip python3-setuptools python3-pandas
  # the example notebook, executed as a test (examples/quickstart.ipynb)
  jupyter-nbconvert python3-nbconvert python3-ipykernel
)
if [ "$with_hip" = "1" ]; then
  packages+=(hipcc libamdhip64-dev)
fi
if [ "$with_cuda" = "1" ]; then
  # nvcc 11.8 and CUDA's runtime; it pulls Debian's driver library (libcuda1), which a build
  # needs and which is inert on a machine without an NVIDIA GPU.
  packages+=(nvidia-cuda-toolkit)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${#missing[@]} package(s): ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
refresh=0
# nvidia-cuda-toolkit lives in non-free and its driver packages partly in contrib: add those
# components for the same mirrors and suites as the system's own sources, once.
non_free=/etc/apt/sources.list.d/rtda-non-free.sources
if [ "$with_cuda" = "1" ] && [ ! -e "$non_free" ]; then
  stanzas=""
  if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    # deb822: every stanza again, with Components replaced.
    stanzas=$(awk '/^Components:/ {print "Components: contrib non-free"; next} {print}' \
      /etc/apt/sources.list.d/debian.sources)
  elif [ -r /etc/apt/sources.list ]; then
    # one-line format: "deb URI SUITE main ..." becomes a stanza per line.
    stanzas=$(awk '$1 == "deb" && $2 !~ /^\[/ {printf "Types: deb\nURIs: %s\nSuites: %s\nComponents: contrib non-free\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n", $2, $3}' \
      /etc/apt/sources.list)
  fi
  if [ -z "$stanzas" ]; then
    echo "install-deps: --cuda: no Debian sources found to add non-free to" >&2
    exit 1
  fi
  printf '%s\n' "$stanzas" | $SUDO tee "$non_free" >/dev/null
  echo "install-deps: added contrib and non-free ($non_free)"
  refresh=1
fi
# Refresh the package lists only when they are missing or older than a day (or just changed).
if [ "$refresh" = "1" ] || [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -n1)" ]; then
  $SUDO apt-get update -q
fi
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: done"
