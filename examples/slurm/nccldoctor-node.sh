#!/usr/bin/env bash
# One node's share of the nccldoctor health check. srun starts it once per node
# (srun --ntasks-per-node=1 nccldoctor-node.sh [bench flags]); it starts torchrun for this
# node's GPUs through `nccldoctor run`, and every node meets the others in a c10d rendezvous
# on the first host of the allocation. It exits with the report's code on every node:
# 0 pass, 1 fail, 2 usage/config, 3 incomplete (torchrun alone would say 1 for all three).
#
#   srun --ntasks-per-node=1 nccldoctor-node.sh --quick --out /shared/nccldoctor/$SLURM_JOB_ID
#
# --out must be on a filesystem every node sees: rank 0 writes the report there, and the batch
# script that reads it back (nccldoctor show DIR --exclude) may run on another node.
#
# Read from Slurm (srun sets them in every task):
#   SLURM_JOB_NODELIST  the allocation's hosts; the first one hosts the rendezvous
#   SLURM_NNODES        how many nodes the rendezvous waits for
#   SLURM_JOB_ID        the rendezvous id (two jobs sharing a host never meet) and its port
#   SLURM_NODEID        this node's index, for the log line only: c10d assigns node ranks
#   SLURM_GPUS_ON_NODE  GPUs Slurm gave this node (--gpus-per-node, --gres=gpu:N): one rank
#                       each; else SLURM_GPUS_PER_NODE ("8" or "h100:8"); else nccldoctor counts
#                       the GPUs it can see (CUDA_VISIBLE_DEVICES, which Slurm sets), or runs 2
#                       CPU ranks on a node without any
# Optional: NCCLDOCTOR_PORT (default 29400 + job id mod 1000), NCCLDOCTOR_JOIN_TIMEOUT (seconds
# the first node waits for the last, default 300: a node that never comes is reported, not
# waited for all job long).
set -euo pipefail

: "${SLURM_JOB_NODELIST:?not inside a Slurm job step: run me with srun}"
: "${SLURM_NNODES:?not inside a Slurm job step: run me with srun}"
: "${SLURM_JOB_ID:?not inside a Slurm job step: run me with srun}"

head_host=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)
port=${NCCLDOCTOR_PORT:-$((29400 + SLURM_JOB_ID % 1000))}

torchrun_options=(
    --nnodes "$SLURM_NNODES"
    --rdzv-backend c10d
    --rdzv-endpoint "$head_host:$port"
    --rdzv-id "nccldoctor-$SLURM_JOB_ID"
    --rdzv-conf "join_timeout=${NCCLDOCTOR_JOIN_TIMEOUT:-300}"
    --max-restarts 0
)
gpus=${SLURM_GPUS_ON_NODE:-${SLURM_GPUS_PER_NODE:-}}
gpus=${gpus##*:} # "h100:8" -> "8"
if [[ -n $gpus ]]; then
    torchrun_options+=(--nproc-per-node "$gpus")
fi

echo "nccldoctor: node ${SLURM_NODEID:-?} of $SLURM_NNODES ($(hostname)), rendezvous at $head_host:$port" >&2

# exec: srun's signals (scancel, the time limit) reach `nccldoctor run`, which hands them to
# torchrun, so the ranks still write their partial report and exit 3.
exec nccldoctor run "${torchrun_options[@]}" -- "$@"
