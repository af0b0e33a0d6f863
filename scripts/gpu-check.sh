#!/usr/bin/env bash
# Every model at batch sizes 1..64 through the backend the infer stage would use (TensorRT
# where an engine is compiled, else ONNX Runtime's CUDA provider, else torch on CUDA), and
# through ONNX Runtime's CUDA provider and torch on CUDA forced (RADSTREAM_BACKEND): images/s,
# p99, and the speed-up of dynamic batching. It says which backend each line ran on, and says
# so when this onnxruntime has no CUDA provider (onnxruntime-gpu is what the GPU image installs).
# Where TensorRT imports, `radstream models compile` builds the engines first (cached, so a
# rerun skips most of it). Installs nothing; < 5 minutes. Not yet run on a GPU (D-031).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; fi
if "$PY" -c "import tensorrt" 2>/dev/null; then
  timeout 150 "$PY" -m radstream.services.cli models compile --max-batch 64 \
    || echo "gpu-check: models compile failed or timed out; measuring with the engines there are"
fi
timeout $((295 - SECONDS)) "$PY" scripts/gpu_check.py --budget $((240 - SECONDS > 30 ? 240 - SECONDS : 30)) "$@"
