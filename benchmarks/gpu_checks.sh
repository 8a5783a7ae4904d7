#!/usr/bin/env bash
# The GPU measurements of the ALM and compression benchmarks, in one run (for a machine with CUDA).
#   bash benchmarks/gpu_checks.sh [OUTDIR]
# Needs torch, timm, lightning and torchmetrics only (no W&B, omegaconf or tensorly).
set -uo pipefail
out=${1:-benchmarks/results}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, timm, lightning; print('torch', torch.__version__, 'timm', timm.__version__, 'lightning', lightning.__version__)" | tee -a "$out/gpu.txt"
python3 benchmarks/alm_speed.py --device cuda --steps 20 --out "$out/alm_speed_cuda.json" 2>&1 | tee "$out/alm_speed_cuda.log"
timeout "${SEARCH_TIMEOUT:-420}" python3 benchmarks/compression_search.py --device cuda --threads 16 --tag bninception_cuda \
    2>&1 | tee "$out/compression_search_cuda.log"
cp benchmarks/results/compression_search_bninception_cuda.json benchmarks/results/compression_search_bninception_cuda.plan.json "$out/" 2>/dev/null
exit 0
