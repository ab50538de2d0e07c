#!/usr/bin/env bash
# 1- vs 2-rank cycle timing for the scaling model (docs/scaling.md §5).
#
#   bench/scaling_validate.sh [repeats] [out_dir]          wall clock, printed fc s / an s
#   bench/scaling_validate.sh cpu [repeats] [out_dir]      CPU seconds per cycle of each rank
#
# Runs `rtda experiment` (N = 64, 20 members, experiment 1, 8 cycles) with 1 and with 2 MPI
# ranks, one thread per rank, for LETKF and for EnSF paper mode with a fixed number of
# pseudo-time steps (early stopping off, 300 steps, so the work per cycle is known), the
# 1- and 2-rank runs interleaved, `repeats` times each (default 3). Prints, per run, the
# median and the range over cycles 1-7 of the printed "fc s" and "an s" columns (cycle 0 has
# no forecast and plans the FFTs), and the load average before the run.
#
# `cpu` mode is for a shared machine, where other jobs take time slices from the ranks and
# the wall clock says more about the load than about rtda: each rank runs under
# /usr/bin/time (mpiexec directly, no --ranks), once with 2 and once with 8 cycles, and
# (CPU_8 - CPU_2) / 6 is the CPU time per cycle (forecast + analysis) of each rank. Open MPI
# spins while a rank waits in a collective, so waiting for a descheduled partner also counts;
# the model's number to compare with is T_forecast + T_analysis-stage of that rank.
# Needs build/client/rtda and the N = 64 nature run (RTDA_NATURE, default /work/runs/nature.h5).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=wall
if [[ ${1:-} == cpu ]]; then
  mode=cpu
  shift
fi
repeats=${1:-3}
out=${2:-/tmp/rtda-scaling-validate}
nature=${RTDA_NATURE:-/work/runs/nature.h5}
mkdir -p "$out"
export OMP_NUM_THREADS=1

summarise() {  # $1 = log file: median [min-max] of fc s / an s over cycles 1..7
  local col out=""
  for col in fc an; do
    out+="$col $(awk -v c=$col '$1 ~ /^[0-9]+$/ && $1 >= 1 && NF >= 9 { print (c == "fc" ? $(NF-1) : $NF) }' "$1" |
      sort -g | awk '{ v[NR] = $1 } END { printf "%.3f [%.3f-%.3f]", v[int((NR + 1) / 2)], v[1], v[NR] }')  "
  done
  echo "$out"
}

cpu_seconds() {  # $1 filter, $2 ranks, $3 cycles, $4 tag: prints "cpu_rank0 cpu_rank1 ..."
  local extra=() cmd
  [[ $1 == ensf ]] && extra=(--set ensf.early_stopping=false --set ensf.max_steps=300)
  cmd=(build/client/rtda experiment --config configs/exp1-linear.toml --filter "$1"
       --set experiment.cycles="$3" --set experiment.statistics_from_cycle=0
       --set experiment.nature_file="$nature" --set model.threads=1 "${extra[@]}"
       --out "$out/cpu-$4.h5")
  rm -f "$out/cpu-$4.time."*
  if [[ $2 == 1 ]]; then
    /usr/bin/time -f "%U %S" -o "$out/cpu-$4.time.0" "${cmd[@]}" >"$out/cpu-$4.log" 2>&1
  else
    local root=()
    [[ $(id -u) == 0 ]] && root=(--allow-run-as-root)
    mpiexec -n "$2" --oversubscribe "${root[@]}" bash -c \
      '/usr/bin/time -f "%U %S" -o "$0.$OMPI_COMM_WORLD_RANK" "$@"' "$out/cpu-$4.time" \
      "${cmd[@]}" >"$out/cpu-$4.log" 2>&1
  fi
  local f
  for f in "$out/cpu-$4.time."*; do awk '{ printf "%.3f ", $1 + $2 }' "$f"; done
}

if [[ $mode == cpu ]]; then
  for rep in $(seq 1 "$repeats"); do
    for filter in ensf letkf; do
      for ranks in 1 2; do
        load=$(cut -d' ' -f1 /proc/loadavg)
        read -r -a c2 <<<"$(cpu_seconds "$filter" "$ranks" 2 "$filter-r$ranks-c2-$rep")"
        read -r -a c8 <<<"$(cpu_seconds "$filter" "$ranks" 8 "$filter-r$ranks-c8-$rep")"
        per=""
        for i in "${!c8[@]}"; do
          per+=$(awk -v a="${c8[$i]}" -v b="${c2[$i]}" 'BEGIN { printf "%.3f ", (a - b) / 6 }')
        done
        printf '%-6s ranks %d rep %d load %5s  CPU s per cycle, per rank: %s\n' \
          "$filter" "$ranks" "$rep" "$load" "$per"
      done
    done
  done
  exit 0
fi

for rep in $(seq 1 "$repeats"); do
  for filter in ensf letkf; do
    for ranks in 1 2; do
      extra=()
      [[ $filter == ensf ]] && extra=(--set ensf.early_stopping=false --set ensf.max_steps=300)
      log="$out/${filter}-r${ranks}-${rep}.log"
      load=$(cut -d' ' -f1 /proc/loadavg)
      build/client/rtda experiment --config configs/exp1-linear.toml --filter "$filter" \
        --set experiment.cycles=8 --set experiment.statistics_from_cycle=0 \
        --set experiment.nature_file="$nature" --set model.threads=1 "${extra[@]}" \
        --ranks "$ranks" --out "$out/${filter}-r${ranks}-${rep}.h5" >"$log" 2>&1
      printf '%-6s ranks %d rep %d load %5s  %s\n' "$filter" "$ranks" "$rep" "$load" "$(summarise "$log")"
    done
  done
done
