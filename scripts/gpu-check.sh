#!/usr/bin/env bash
# Every model at batch sizes 1..64 through the backend the infer stage would use (TensorRT
# where an engine is compiled, else torch, CUDA when present): images/s, p99, and the
# speed-up of dynamic batching. Where TensorRT imports, `radstream models compile` builds
# the engines first (cached, so a rerun skips most of it). Installs nothing; < 5 minutes.
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
