#!/usr/bin/env bash
# The GPU measurements of the ALM and compression benchmarks, in one run (for a machine with CUDA).
#   bash benchmarks/gpu_checks.sh [OUTDIR]
#   PARTS="search fit" bash benchmarks/gpu_checks.sh /tmp/out   # a subset: alm_speed, search, fit, latency
# PARTS=latency also needs QUALITY_CKPT: the dense checkpoint of benchmarks/compression_quality.py (seed 0).
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
if [[ " $parts " == *" latency "* ]]; then  # full vs compressed: this host's CPU at 2 threads, then the GPU (bf16)
    lscpu | grep -E "Model name|^CPU\(s\)" | tee -a "$out/gpu.txt"
    alm=(--plan benchmarks/results/compression_search_bninception_trained_cpu.plan.json --arch alm --backbone bninception --num-attributes 26 --size 128 64)
    python3 benchmarks/latency.py "${alm[@]}" --threads 2 --runs 30 8 --tag alm_bninception_cpu_gpuhost --out "$out/latency_alm_bninception_cpu_gpuhost.json" 2>&1 | tee -a "$out/latency.log"
    python3 benchmarks/latency.py "${alm[@]}" --device cuda --tag alm_bninception_cuda --out "$out/latency_alm_bninception_cuda.json" 2>&1 | tee -a "$out/latency.log"
    for policy in gradient_budget uniform_ratio; do
        q=(--checkpoint "$QUALITY_CKPT" --plan "benchmarks/results/compression_quality_cpu_$policy.plan.json")
        python3 benchmarks/latency.py "${q[@]}" --threads 2 --runs 30 8 --tag "quality_${policy}_cpu_gpuhost" --out "$out/latency_quality_${policy}_cpu_gpuhost.json" 2>&1 | tee -a "$out/latency.log"
        python3 benchmarks/latency.py "${q[@]}" --device cuda --tag "quality_${policy}_cuda" --out "$out/latency_quality_${policy}_cuda.json" 2>&1 | tee -a "$out/latency.log"
    done
fi
exit 0
