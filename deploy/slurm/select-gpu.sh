#!/usr/bin/env bash
# Gives each MPI rank of a node its own GPU, then runs the command:
#
#   srun ... --gpu-bind=none deploy/slurm/select-gpu.sh rtda-worker --device gpu ...
#   mpiexec ... deploy/slurm/select-gpu.sh rtda-worker --device gpu ...
#
# For sites where `srun --gpu-bind=closest` is not available, or with mpiexec. The rank's
# node-local index (read as rtda-worker reads it: OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID,
# SLURM_LOCALID, PMI_LOCAL_RANK) picks the device, which is then the only one in
# ROCR_VISIBLE_DEVICES (HIP_VISIBLE_DEVICES is cleared so that the two do not stack). The
# process sees exactly one device, which rtda-worker takes as its device 0.
#
# Environment:
#   RTDA_GPUS_PER_NODE  devices per node (default: all of ROCR_VISIBLE_DEVICES if set, else 8);
#                       local rank r gets device r modulo this
#   RTDA_GPU_MAP        optional comma list of device ids by local rank, e.g. "4,5,2,3,6,7,0,1"
#                       to pair ranks bound to given cores with their closest GCD
set -euo pipefail

if [ $# -eq 0 ]; then
  echo "select-gpu.sh: usage: select-gpu.sh COMMAND [ARGS...]" >&2
  exit 2
fi

local_rank=""
for var in OMPI_COMM_WORLD_LOCAL_RANK MPI_LOCALRANKID SLURM_LOCALID PMI_LOCAL_RANK; do
  if [ -n "${!var:-}" ]; then
    local_rank=${!var}
    break
  fi
done
if [ -z "$local_rank" ]; then
  echo "select-gpu.sh: no node-local rank in the environment (OMPI_COMM_WORLD_LOCAL_RANK," \
    "MPI_LOCALRANKID, SLURM_LOCALID, PMI_LOCAL_RANK): run it under srun or mpiexec" >&2
  exit 2
fi
case "$local_rank" in
  '' | *[!0-9]*)
    echo "select-gpu.sh: node-local rank '$local_rank' is not a number" >&2
    exit 2
    ;;
esac

# The devices this node lends the job: the launcher may already have narrowed them.
IFS=',' read -r -a devices <<<"${ROCR_VISIBLE_DEVICES:-}"
if [ -n "${RTDA_GPU_MAP:-}" ]; then
  IFS=',' read -r -a devices <<<"$RTDA_GPU_MAP"
elif [ "${#devices[@]}" -eq 0 ]; then
  count=${RTDA_GPUS_PER_NODE:-8}
  devices=()
  for ((i = 0; i < count; i++)); do devices+=("$i"); done
elif [ -n "${RTDA_GPUS_PER_NODE:-}" ] && [ "$RTDA_GPUS_PER_NODE" -lt "${#devices[@]}" ]; then
  devices=("${devices[@]:0:$RTDA_GPUS_PER_NODE}")
fi
if [ "${#devices[@]}" -eq 0 ]; then
  echo "select-gpu.sh: no GPU to choose from (RTDA_GPU_MAP / ROCR_VISIBLE_DEVICES empty)" >&2
  exit 2
fi

device=${devices[$((local_rank % ${#devices[@]}))]}
export ROCR_VISIBLE_DEVICES="$device"
# Under ROCR_VISIBLE_DEVICES the runtime renumbers the one device it shows as 0.
unset HIP_VISIBLE_DEVICES
if [ -n "${RTDA_SELECT_GPU_VERBOSE:-}" ]; then
  echo "select-gpu.sh: ${HOSTNAME:-?} local rank $local_rank -> ROCR_VISIBLE_DEVICES=$device" >&2
fi
exec "$@"
