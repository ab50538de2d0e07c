#!/bin/sh
# The C++ model against the independent NumPy oracle (sqg_reference.py) from one turbulent
# state: rtda forecast S steps vs the oracle's S steps, compared with compare_fields.py.
# Usage: check_against_reference.sh RTDA PYTHON WORKDIR STEPS RTOL [--set k=v ...]
set -eu
rtda=$1; py=$2; work=$3; steps=$4; rtol=$5; shift 5
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
# A short spin-up reaches developed turbulence while keeping the test quick.
"$rtda" nature --out "$work/nature.h5" --set nature.spinup_days=20 --set nature.states=1 "$@" \
  >"$work/nature.log" 2>&1
"$rtda" forecast --in "$work/nature.h5" --nature-index 0 --steps 0 --out "$work/start.h5" \
  >/dev/null 2>&1
"$rtda" forecast --in "$work/start.h5" --steps "$steps" --out "$work/rtda.h5" >/dev/null 2>&1
"$py" "$here/sqg_reference.py" --in "$work/start.h5" --steps "$steps" --out "$work/ref.h5"
"$py" "$here/compare_fields.py" "$work/rtda.h5" "$work/ref.h5" --rtol "$rtol"
