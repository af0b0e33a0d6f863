"""demo-motion's compute per call at one thread (D-059): the torch.fft features it was trained on
(a copy of the old MotionSpectrum.features), the matmul features on torch, and the exported
graph on ONNX Runtime's CPU provider; batch 1 and 8 of training-like phantoms through the
manifest's profile. Each round runs every variant once, back to back; medians of the rounds.

    RADSTREAM_COMPUTE_THREADS=1 .venv/bin/python docs/evidence/issue18-motion/bench_motion.py 120
"""

import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from radstream.models.backends.onnxruntime_backend import OnnxRuntimeBackend
from radstream.models.backends.torch_backend import TorchBackend
from radstream.models.families.spectral import DEFAULT_ARCHITECTURE, polar_pooling
from radstream.models.profile import apply_profile
from radstream.models.registry import default_registry_dir, load_manifests
from radstream.models.training.train_qc import generate_qc_samples

POOLING = polar_pooling(**{k: DEFAULT_ARCHITECTURE[k] for k in ("patch", "bands", "angles", "kappa", "f_min", "f_max")})


def torch_fft_features(net, x):
    patches = F.unfold(x[:, :1].float(), net.patch, stride=net.stride)
    n, _, count = patches.shape
    patches = patches.transpose(1, 2).reshape(n, count, net.patch, net.patch)
    patches = patches - patches.mean(dim=(2, 3), keepdim=True)
    power = torch.fft.rfft2(patches * net.window).abs() ** 2
    power = power / (power.sum(dim=(2, 3), keepdim=True) + 1e-12)
    spectrum = torch.log(power + 1e-8).median(dim=1).values
    polar = (spectrum.reshape(n, -1) @ POOLING).reshape(n, net.bands, net.angles)
    level = polar.mean(dim=2, keepdim=True)
    shape = polar - level
    harmonics = torch.fft.rfft(shape, dim=2)[:, :, 1:net.harmonics + 1]
    phase = harmonics / (harmonics.abs() + 1e-6)
    coherence = phase.mean(dim=1).abs()
    neighbours = (phase[:, 1:] * phase[:, :-1].conj()).real.mean(dim=1)
    return torch.cat([level[..., 0], (harmonics.abs() / net.angles).reshape(n, -1), shape.std(dim=2),
                      shape.amin(dim=2), shape.amax(dim=2), coherence, neighbours], dim=1)


def main(rounds: int) -> None:
    torch.set_num_threads(1)
    manifest = load_manifests(default_registry_dir(), ["demo-motion"])["demo-motion"]
    torch_backend = TorchBackend(manifest, device="cpu")
    net = torch_backend.net.eval()
    ort_backend = OnnxRuntimeBackend(manifest, threads=1)
    images = [s.image for s in generate_qc_samples(np.random.default_rng(3), 8)]
    x8 = np.stack([apply_profile(i, manifest.input_profile)[0] for i in images]).astype(np.float32)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    for batch in (1, 8):
        xn = np.ascontiguousarray(x8[:batch])
        xt = torch.from_numpy(xn)
        variants = {
            "torch, torch.fft (before)": lambda: torch.sigmoid(
                net.head((torch_fft_features(net, xt) - net.feature_mean) / net.feature_scale)),
            "torch, matmuls (now)": lambda: torch.sigmoid(net(xt)),
            "onnxruntime, session.run": lambda: ort_backend.session.run(ort_backend.output_names, {"input": xn}),
            "onnxruntime, predict": lambda: ort_backend.predict(xn),
        }
        times = {name: [] for name in variants}
        with torch.inference_mode():
            for run in variants.values():
                for _ in range(3):
                    run()
            for _ in range(rounds):
                for name, run in variants.items():
                    started = time.perf_counter()
                    run()
                    times[name].append(time.perf_counter() - started)
        before = statistics.median(times["torch, torch.fft (before)"])
        for name, values in times.items():
            median = statistics.median(values)
            print(f"batch {batch}  {name:28s} {median * 1e3:7.2f} ms  ({median / batch * 1e3:5.2f} ms/image)"
                  f"  before / this {before / median:4.2f}x")
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
