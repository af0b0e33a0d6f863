"""Throughput and latency of every model in the registry at batch sizes 1..64, through the
same TorchBackend the infer stage uses: on CUDA when there is a GPU, else on the CPU.

Prints images/s and p99 latency per model and batch size, and the speed-up of the best
batch over batch 1 (what dynamic batching buys). Bounded: `--seconds` per measurement.

    python scripts/gpu_check.py [--device auto|cpu|cuda] [--max-batch 64] [--seconds 1.5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from radstream.models.backends.torch_backend import TorchBackend
from radstream.models.registry import default_registry_dir, load_manifests
from radstream.services.percentiles import percentile


def measure(backend: TorchBackend, batch: int, seconds: float, device: str) -> tuple[float, float]:
    profile = backend.manifest.input_profile
    x = np.random.default_rng(0).normal(size=(batch, profile.channels, profile.size, profile.size)).astype(np.float32)
    backend.predict(x)  # warm-up (CUDA context, kernels, allocator)
    latencies = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(latencies) < 3:
        t0 = time.perf_counter()
        backend.predict(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        latencies.append(time.perf_counter() - t0)
    return batch / float(np.median(latencies)), 1000 * percentile(latencies, 99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=1.5)
    args = parser.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {device} — {name}; torch {torch.__version__}; TensorRT: "
          + ("installed" if _has_tensorrt() else "not installed (torch path only)"))
    sizes = [b for b in (1, 2, 4, 8, 16, 32, 64) if b <= args.max_batch]
    for manifest in load_manifests(default_registry_dir()).values():
        backend = TorchBackend(manifest, device=device)
        rows = [(b, *measure(backend, b, args.seconds, device)) for b in sizes]
        best = max(rows, key=lambda r: r[1])
        print(f"\n{manifest.key} ({manifest.task}, {manifest.input_profile.size}px)")
        print(f"{'batch':>6} {'images/s':>10} {'p99 ms':>9}")
        for b, rate, p99 in rows:
            print(f"{b:>6} {rate:>10.1f} {p99:>9.2f}")
        print(f"best batch {best[0]}: {best[1]:.1f} images/s, {best[1] / rows[0][1]:.2f}x batch 1")


def _has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
