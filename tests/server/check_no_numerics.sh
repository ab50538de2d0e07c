#!/bin/sh
# The coordinator links no numerics (docs/development.md "Seams"): no FFTW, OpenMP or HIP
# library, and none of the model's, the filters' or Eigen's code.
# Usage: check_no_numerics.sh RTDA_SERVER
set -eu
bin=$1
libs=$(ldd "$bin" | grep -Ei 'fftw|gomp|amdhip|cudart' || true)
if [ -n "$libs" ]; then
  echo "FAIL: $bin links numerical libraries:" >&2
  echo "$libs" >&2
  exit 1
fi
syms=$(nm -C "$bin" | grep -E 'Eigen::|rtda::sqg::SqgModel|rtda::filters::(Letkf|Ensf)Analysis|rtda::l96::Lorenz96::' | head -5 || true)
if [ -n "$syms" ]; then
  echo "FAIL: $bin contains numerical code, e.g.:" >&2
  echo "$syms" >&2
  exit 1
fi
echo "ok: $bin links no numerics"
