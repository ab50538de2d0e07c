#!/bin/sh
# rtda experiment on 1 and on 2 MPI ranks gives bitwise identical analyses (or, with
# COMPARE="--rtol R ..." in the environment, analyses equal within that tolerance).
# Usage: experiment_ranks.sh RTDA PYTHON WORKDIR FILTER [--set k=v ...]
set -eu
rtda=$1; py=$2; work=$3; filter=$4; shift 4
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"; mkdir -p "$work"; cd "$work"
common="--set nature.spinup_days=10 --set nature.states=8 --set experiment.cycles=4 \
  --set experiment.statistics_from_cycle=0 --set model.fft_wisdom_file=$work/wisdom.txt"
# shellcheck disable=SC2086
"$rtda" experiment --filter "$filter" --out one.h5 --ranks 1 $common "$@" > one.log 2>&1 \
  || { cat one.log; exit 1; }
# The second run reuses the first one's nature run (a model that makes its truth in memory,
# NATURE=memory, has none).
nature="--set experiment.nature_file=one-nature.h5"
[ "${NATURE:-file}" = memory ] && nature=""
# shellcheck disable=SC2086
"$rtda" experiment --filter "$filter" --out two.h5 --ranks 2 $common $nature "$@" > two.log 2>&1 \
  || { cat two.log; exit 1; }
# shellcheck disable=SC2086
"$py" "$here/compare_archives.py" one.h5 two.h5 ${COMPARE:-}
