#!/usr/bin/env bash
# The GPU measurements of the ALM and compression benchmarks, in one run (for a machine with CUDA).
#   bash benchmarks/gpu_checks.sh [OUTDIR]
#   PARTS="search fit" bash benchmarks/gpu_checks.sh /tmp/out   # a subset: alm_speed, search, fit
# Needs torch, timm, lightning, torchmetrics, rich and matplotlib only (no W&B, omegaconf or tensorly).
set -uo pipefail
out=${1:-benchmarks/results}
parts=${PARTS:-alm_speed search fit}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, timm, lightning; print('torch', torch.__version__, 'timm', timm.__version__, 'lightning', lightning.__version__)" | tee -a "$out/gpu.txt"
if [[ " $parts " == *" alm_speed "* ]]; then
    python3 benchmarks/alm_speed.py --device cuda --steps 20 --out "$out/alm_speed_cuda.json" 2>&1 | tee "$out/alm_speed_cuda.log"
fi
if [[ " $parts " == *" search "* ]]; then  # BN-Inception ALM trained 6 epochs on synthetic data, then the rank search
    timeout "${SEARCH_TIMEOUT:-420}" python3 benchmarks/compression_search.py --device cuda --threads 16 \
        --data /tmp/syn --synthesize 6000 --train-epochs 6 --tag bninception_trained_cuda --final-als 200 --final-epc 100 \
        --out "$out/compression_search_bninception_trained_cuda.json" 2>&1 | tee "$out/compression_search_trained_cuda.log"
fi
if [[ " $parts " == *" fit "* ]]; then  # a compressing fit under bf16-mixed on the GPU
    timeout "${FIT_TIMEOUT:-240}" python3 benchmarks/gpu_compression_fit.py --data /tmp/syn --synthesize 6000 \
        --out "$out/gpu_compression_fit.json" 2>&1 | tee "$out/gpu_compression_fit.log"
fi
exit 0
