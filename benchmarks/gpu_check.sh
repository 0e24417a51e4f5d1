#!/usr/bin/env bash
# The GPU kit: one GPU, under 8 minutes, everything nccldoctor does on a GPU, saved as fixtures.
#
#   benchmarks/gpu_check.sh OUT_DIR        e.g. tests/fixtures/gpu/$(date +%F)/
#
# With a GPU (nvidia-smi and torch.cuda.is_available()):
#   1. the bench at world size 1 on NCCL, NCCL's INFO log captured into OUT_DIR; its health
#      phase reads NVML live while the compute probe loads the GPU; the DDP benchmark runs
#      gpt2-125m;
#   2. a bare matmul loop (benchmarks/gpu_kit.py) and the bare DDP loop of
#      benchmarks/ddp_overhead.py, for two ratios: compute probe / bare matmul TFLOP/s
#      (target >= 0.95) and DDP benchmark / bare loop tokens/s (target >= 0.97);
#   3. fixtures in OUT_DIR: report.json, nvml.json, nccl_info.log, ratios.json (+ run/, the
#      bench's whole output folder, and ddp_overhead.txt).
# Without one it runs the same steps on Gloo with tiny sizes (the CPU path, well under a
# minute), says so, and writes report.json and ratios.json (no NVML, no NCCL log).
# NCCLDOCTOR_KIT_CPU=1 takes the CPU path even on a GPU machine. PYTHON picks the interpreter.
set -euo pipefail

OUT=${1:?usage: benchmarks/gpu_check.sh OUT_DIR}
PY=${PYTHON:-python}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

has_gpu() {
    [[ "${NCCLDOCTOR_KIT_CPU:-0}" != 1 ]] && command -v nvidia-smi >/dev/null 2>&1 &&
        "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null
}

if has_gpu; then
    MODE=gpu
    echo "gpu kit: GPU path ($(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1))"
    BENCH=(--backend nccl --ddp-model gpt2-125m --timeout 300)
    DEVICE=cuda
    DDP=(--model gpt2-125m --blocks 4 --steps 20)
    # NCCL's own INFO log, one file per process; the bench reads files it did not ask for
    # without removing them (nccldoctor/nccl_capture.py).
    export NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=INIT,NET NCCL_DEBUG_FILE="$OUT/nccl_info.%h.%p.log"
else
    MODE=cpu
    echo "gpu kit: no GPU here: CPU path (Gloo, tiny sizes; no NVML, no NCCL log)"
    BENCH=(--backend gloo -e 64K -n 3 -w 1 --ddp-model tiny --ddp-steps 5 --timeout 120)
    DEVICE=cpu
    DDP=(--model tiny --blocks 1 --steps 5)
    export CUDA_VISIBLE_DEVICES=""  # NCCLDOCTOR_KIT_CPU=1 on a GPU machine: the baselines too
fi

echo "gpu kit: 1/3 bench (world size 1) -> $OUT/run"
rm -rf "$OUT/run"
set +e  # findings (exit 1) are results here, not failures of the kit
"$PY" -m torch.distributed.run --standalone --nproc-per-node 1 -m nccldoctor.bench \
    "${BENCH[@]}" --out "$OUT/run" --quiet
BENCH_RC=$?
set -e
echo "gpu kit: bench exit code $BENCH_RC"
unset NCCL_DEBUG NCCL_DEBUG_SUBSYS NCCL_DEBUG_FILE  # the baselines run without the log

echo "gpu kit: 2/3 bare matmul and bare DDP loop"
# A failed baseline leaves its ratio "not measured"; the fixtures are still worth saving.
"$PY" "$HERE/gpu_kit.py" matmul --device "$DEVICE" --out "$OUT/matmul.json" ||
    echo "gpu kit: the bare matmul failed (exit $?)"
timeout 300 "$PY" "$HERE/ddp_overhead.py" --nproc 1 "${DDP[@]}" | tee "$OUT/ddp_overhead.txt" ||
    echo "gpu kit: benchmarks/ddp_overhead.py failed (exit $?)"

echo "gpu kit: 3/3 fixtures and ratios ($MODE path)"
"$PY" "$HERE/gpu_kit.py" collect "$OUT" --mode "$MODE"
