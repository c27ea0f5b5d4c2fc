#!/usr/bin/env bash
# One prepared GPU check (see bench/gpu_check.py): run from the repo root on the GPU machine,
# with .whl/ holding keras, namex and optree wheels for its Python (docs/speed.md).
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
# Keras on JAX: every step is XLA-compiled (the first epoch includes 40-90 s of compilation)
timeout 330 python3 -m bench.gpu_check jax "$OUT/gpu.json" \
  ${JAX_SETTINGS:-fp32-b64 bf16-b64-spe16 bf16-b256-spe4} 2>&1 | grep -v "W1127\|^W0000\|^I0000"
# Keras on PyTorch: no XLA, for the comparison XLA vs none
timeout 200 python3 -m bench.gpu_check torch "$OUT/gpu.json" \
  ${TORCH_SETTINGS:-bf16-b256 fp32-b256} 2>&1 | tail -5
cat "$OUT/gpu.json"
