"""Throughput and latency of every model in the registry at batch sizes 1..64, through the
backend the infer stage would open (models/backends/select.py: TensorRT where a compiled
engine is cached, else ONNX Runtime's CUDA provider, else torch on CUDA; on the CPU ONNX
Runtime, else torch), and through each backend named in `--backends` besides (by default also
`onnxruntime` and `torch` forced, so the ONNX Runtime CUDA path and torch run on the same GPU).
A backend that cannot run a model here is one line saying why, and the rest go on.

Prints images/s and p99 latency per model, backend and batch size, and the speed-up of the
best batch over batch 1 (what dynamic batching buys). Bounded: `--seconds` per measurement,
shortened so that all of them fit in `--budget` seconds. RADSTREAM_TORCH_PRECISION,
RADSTREAM_CUDA_GRAPHS and RADSTREAM_COMPUTE_THREADS apply as they do in the infer stage.

    python scripts/gpu_check.py [--device auto|cpu|cuda] [--backends auto,onnxruntime,torch]
                                [--max-batch 64] [--seconds 1.5] [--budget 200]
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

import numpy as np
import torch

from radstream.models.backends.select import ORT_CUDA_PROVIDER, open_backend, probe_platform
from radstream.models.manifest import ModelLoadError
from radstream.models.registry import default_registry_dir, load_manifests
from radstream.services.percentiles import percentile
from radstream.streams.config import Config


def measure(backend: Any, batch: int, seconds: float) -> tuple[float, float]:
    profile = backend.manifest.input_profile
    x = np.random.default_rng(0).normal(size=(batch, profile.channels, profile.size, profile.size)).astype(np.float32)
    backend.predict(x)  # warm-up (CUDA context, kernels, allocator)
    on_cuda = getattr(backend.device, "type", "cpu") == "cuda"
    latencies = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(latencies) < 3:
        t0 = time.perf_counter()
        backend.predict(x)  # outputs come back to the host, but be explicit about the device being idle
        if on_cuda:
            torch.cuda.synchronize(backend.device)
        latencies.append(time.perf_counter() - t0)
    return batch / float(np.median(latencies)), 1000 * percentile(latencies, 99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--backends", default="auto,onnxruntime,torch",
                        help="RADSTREAM_BACKEND settings to measure, comma-separated (same backend measured once)")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--budget", type=float, default=200.0, help="seconds for all measurements together")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # open_backend logs its choice and why
    config = Config.from_env()
    platform = probe_platform(args.device)
    name = torch.cuda.get_device_name(0) if platform.cuda else f"CPU ({torch.get_num_threads()} threads)"
    trt = f"TensorRT {platform.tensorrt_version}" if platform.tensorrt_version else platform.tensorrt_problem
    ort = (f"onnxruntime {platform.onnxruntime_version} ({', '.join(platform.onnxruntime_providers)})"
           if platform.onnxruntime_version else platform.onnxruntime_problem)
    print(f"device: {name}; torch {torch.__version__}; {trt}; {ort}; engine cache {config.engine_cache}")
    if platform.cuda and ORT_CUDA_PROVIDER not in platform.onnxruntime_providers:
        print("ONNX Runtime CUDA path: NOT measured: this onnxruntime has no CUDA execution provider "
              "(the GPU image installs onnxruntime-gpu in its place)")
    settings = [b.strip() for b in args.backends.split(",") if b.strip()]
    sizes = [b for b in (1, 2, 4, 8, 16, 32, 64) if b <= args.max_batch]
    manifests = load_manifests(config.model_registry or default_registry_dir(), config.models)
    # Each measurement also pays a warm-up call: leave a third of the budget for those and the loads.
    seconds = min(args.seconds, args.budget * 2 / 3 / max(1, len(manifests) * len(sizes) * len(settings)))
    for manifest in manifests.values():
        measured: set[str] = set()
        for setting in settings:
            try:
                backend = open_backend(manifest, args.device, config.engine_cache, args.max_batch, platform,
                                       torch_precision=config.torch_precision, cuda_graphs=config.cuda_graphs,
                                       backend=setting, threads=config.compute_threads)
            except ModelLoadError as exc:
                print(f"\n{manifest.key}: RADSTREAM_BACKEND={setting}: not measured: {exc}", flush=True)
                continue
            if backend.name in measured:
                continue  # auto chose what a forced setting also gives
            if platform.cuda and backend.name == "onnxruntime-cpu" and setting == "onnxruntime":
                print(f"\n{manifest.key}: RADSTREAM_BACKEND=onnxruntime runs on the CPU here: not measured", flush=True)
                continue
            measured.add(backend.name)
            rows = [(b, *measure(backend, b, seconds)) for b in sizes]
            best = max(rows, key=lambda r: r[1])
            detail = f" ({backend.detail})" if hasattr(backend, "detail") else ""
            print(f"\n{manifest.key} ({manifest.task}, {manifest.input_profile.size}px) on {backend.name}{detail}"
                  f" [RADSTREAM_BACKEND={setting}]")
            print(f"{'batch':>6} {'images/s':>10} {'p99 ms':>9}")
            for b, rate, p99 in rows:
                print(f"{b:>6} {rate:>10.1f} {p99:>9.2f}")
            print(f"best batch {best[0]}: {best[1]:.1f} images/s, {best[1] / rows[0][1]:.2f}x batch 1", flush=True)


if __name__ == "__main__":
    main()
