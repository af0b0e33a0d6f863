#!/usr/bin/env bash
# Every demo model through torch (CUDA when present) at batch sizes 1..64: images/s, p99,
# and the speed-up of dynamic batching. Installs nothing that is already there; < 5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; fi
timeout 300 "$PY" scripts/gpu_check.py "$@"
