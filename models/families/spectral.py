"""Motion blur measured in the image's power spectrum, read by a trained linear head.

Patient motion smears the image along one direction, so the local power spectrum loses
energy along that direction above about 1/(blur length) and keeps it across. The small
CNN never learned that from pixels (AUC about 0.63 at 128 and 256 px, D-014); measuring
it directly does. The graph, all in torch:

1. Hann-windowed patches at half-patch stride (Welch's method), each patch's mean removed.
2. Each patch's power spectrum divided by its total power, so exposure, contrast and the
   profile's normalisation cancel; then the log.
3. The median over patches, so that the few patches holding a shutter edge, an uncovered
   corner or a flat collimated region do not dominate.
4. Pooled into radial bands x orientation bins (soft von Mises weights over orientation,
   so no bin is empty at low frequencies).
5. Per band: the mean level; the magnitudes of the first angular harmonics, which do not
   depend on the direction of motion; the spread; the deepest and the highest orientation.
   Across bands, per harmonic: how well its phase agrees from band to band (motion removes
   detail along one direction at every scale above its cut-off; anatomy's own texture
   rarely lines up so well). These two terms took the held-out AUC from 0.874 to 0.891.

A logistic head reads the standardised features; it is the only trained part (the
standardisation is fitted on the training set and kept as buffers).

The graph exports to ONNX (D-059): no torch.fft and no complex tensors, which torch's exporter
has neither of. The 2-D real DFT of each patch is two matmuls with fixed cos/sin matrices
(along x the rfft's 33 columns, then along y the full 64 rows, real and imaginary parts kept
side by side), the 16-angle rfft of each band likewise, and the median over patches is the
least of a TopK of the larger half (torch.median's lower middle for an even count), taken
before the log (which is monotonic). These equal the torch.fft features within float32
rounding (tests/unit/models/test_motion_model.py), so the trained head is unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from radstream.models.families.tiny import SigmoidClassifier

DEFAULT_ARCHITECTURE: dict[str, Any] = {
    "patch": 64, "stride": 32, "bands": 8, "angles": 16, "harmonics": 4, "kappa": 4.0,
    "f_min": 0.04, "f_max": 0.48,
}


def polar_pooling(patch: int, bands: int, angles: int, kappa: float, f_min: float, f_max: float) -> torch.Tensor:
    """(patch * (patch // 2 + 1), bands * angles): averages rfft2 bins into band x orientation cells.

    Orientation is taken modulo pi (a spectrum is symmetric); each frequency counts towards
    every orientation bin with weight exp(kappa * (cos 2(phi - centre) - 1)).
    """
    fy = np.fft.fftfreq(patch)[:, None] * np.ones((1, patch // 2 + 1))
    fx = np.fft.rfftfreq(patch)[None, :] * np.ones((patch, 1))
    radius, phi = np.hypot(fx, fy).ravel(), np.mod(np.arctan2(fy, fx), np.pi).ravel()
    band = np.digitize(radius, np.linspace(f_min, f_max, bands + 1)) - 1
    centres = (np.arange(angles) + 0.5) * np.pi / angles
    orientation = np.exp(kappa * (np.cos(2 * (phi[:, None] - centres[None, :])) - 1.0))
    in_band = (band[:, None] == np.arange(bands)[None, :]).astype(np.float64)
    weights = (in_band[:, :, None] * orientation[:, None, :]).reshape(len(radius), bands * angles)
    return torch.tensor(weights / weights.sum(0, keepdims=True), dtype=torch.float32)


def dft_matrices(patch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The 2-D real DFT of a (patch, patch) image x as `rows @ (x @ columns)`.

    columns (patch, 2k), k = patch // 2 + 1: [cos | -sin] of 2 pi n f / patch, so x @ columns
    is the real and imaginary parts of the rfft along x; rows (2 patch, patch): [cos; sin],
    the full DFT along y applied to both. Built in float64, then rounded once to float32.
    """
    n = np.arange(patch)[:, None]
    columns = 2 * np.pi * n * np.arange(patch // 2 + 1)[None, :] / patch
    rows = 2 * np.pi * n * np.arange(patch)[None, :] / patch
    return (torch.tensor(np.concatenate([np.cos(columns), -np.sin(columns)], axis=1), dtype=torch.float32),
            torch.tensor(np.concatenate([np.cos(rows), np.sin(rows)], axis=0), dtype=torch.float32))


def harmonic_basis(angles: int, harmonics: int) -> torch.Tensor:
    """(angles, 2 harmonics): [cos | -sin], so v @ it is the real and imaginary parts of
    rfft(v)[1:harmonics + 1] over the orientation bins."""
    t = 2 * np.pi * np.arange(angles)[:, None] * np.arange(1, harmonics + 1)[None, :] / angles
    return torch.tensor(np.concatenate([np.cos(t), -np.sin(t)], axis=1), dtype=torch.float32)


def welch_patches(x: torch.Tensor, patch: int, stride: int) -> torch.Tensor:
    """(N, H, W) -> (N, L, patch, patch): the patches F.unfold would cut, in its order, by
    one slice per patch row and per patch column (F.unfold exports as an im2col gather, which
    took 1.7 of ONNX Runtime's 7.7 ms per 256 px image)."""
    rows, cols = (x.shape[-2] - patch) // stride + 1, (x.shape[-1] - patch) // stride + 1
    strips = torch.stack([x[:, i * stride:i * stride + patch] for i in range(rows)], dim=1)  # (N, rows, P, W)
    cut = torch.stack([strips[..., j * stride:j * stride + patch] for j in range(cols)], dim=2)
    return cut.reshape(-1, rows * cols, patch, patch)


class MotionSpectrum(nn.Module):
    """Spectral anisotropy features (fixed) and a linear head (trained); see the module docstring."""

    def __init__(self, n_labels: int = 1, in_channels: int = 1, patch: int = 64, stride: int = 32,
                 bands: int = 8, angles: int = 16, harmonics: int = 4, kappa: float = 4.0,
                 f_min: float = 0.04, f_max: float = 0.48) -> None:
        super().__init__()
        if not 0 < f_min < f_max <= 0.5:
            raise ValueError(f"need 0 < f_min < f_max <= 0.5 cycles/px, got {f_min}, {f_max}")
        if not 1 <= harmonics < angles // 2:
            raise ValueError(f"harmonics must be in [1, angles // 2), got {harmonics} for {angles} angles")
        self.patch, self.stride, self.bands, self.angles, self.harmonics = patch, stride, bands, angles, harmonics
        # Fixed by the architecture, so rebuilt on load rather than stored with the weights.
        window = torch.hann_window(patch, periodic=False)
        self.register_buffer("window", window[:, None] * window[None, :], persistent=False)
        # Only the rfft2 bins that some band x orientation cell averages (f_min <= radius < f_max:
        # 1500 of 2112 at 64 px) are carried through the median: the others would be multiplied by 0.
        pooling = polar_pooling(patch, bands, angles, kappa, f_min, f_max)
        bins = (pooling != 0).any(dim=1).nonzero()[:, 0]
        self.register_buffer("bins", bins, persistent=False)
        self.register_buffer("pooling", pooling[bins], persistent=False)
        columns, rows = dft_matrices(patch)
        self.register_buffer("dft_columns", columns, persistent=False)
        self.register_buffer("dft_rows", rows, persistent=False)
        self.register_buffer("harmonic_basis", harmonic_basis(angles, harmonics), persistent=False)
        n_features = bands * (4 + harmonics) + 2 * harmonics
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_scale", torch.ones(n_features))
        self.head = nn.Linear(n_features, n_labels)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) -> (N, bands * (4 + harmonics) + 2 * harmonics), from the first channel."""
        if min(x.shape[-2:]) < self.patch:
            raise ValueError(f"input {tuple(x.shape[-2:])} is smaller than one {self.patch} px patch")
        if len(x) > 1 and not torch.jit.is_tracing():
            # Eager torch, image by image: one image's spectra (about 1.6 MB at 256 px) stay in
            # cache, 1.6x faster at batch 8 on one thread. A traced graph keeps the batch axis
            # (ONNX Runtime gains nothing from the split).
            return torch.cat([self._features(x[i:i + 1]) for i in range(len(x))])
        return self._features(x)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        p, k = self.patch, self.patch // 2 + 1
        patches = welch_patches(x[:, 0].float(), p, self.stride)  # (N, L, P, P)
        count = patches.shape[1]
        patches = patches - patches.mean(dim=(2, 3), keepdim=True)
        # rfft2 as matmuls: along x to [re | im] of the k = P/2+1 columns; then, the patches moved
        # last, along y [cos; sin] @ that = [C re, C im; S re, S im], so re = C re + S im and
        # im = C im - S re. One GEMM per stage, and the median below reads contiguous rows.
        along_x = ((patches * self.window) @ self.dft_columns).permute(0, 2, 3, 1)  # (N, P, 2k, L)
        z = (self.dft_rows @ along_x.reshape(-1, p, 2 * k * count)).reshape(-1, 2 * p, 2 * k, count)
        real = z[:, :p, :k] + z[:, p:, k:]
        imag = z[:, :p, k:] - z[:, p:, :k]
        power = (real * real + imag * imag).reshape(-1, p * k, count)  # rfft2(...).abs() ** 2, bins x patches
        power = (power / (power.sum(dim=1, keepdim=True) + 1e-12))[:, self.bins]
        # The median over patches (torch.median's lower middle for an even count): the least of
        # the count - middle largest. Then the log: it is monotonic, so it commutes with the median.
        middle = (count - 1) // 2
        median = torch.topk(power, count - middle, dim=2, sorted=False).values.amin(dim=2)  # (N, bins)
        polar = (torch.log(median + 1e-8) @ self.pooling).reshape(-1, self.bands, self.angles)
        level = polar.mean(dim=2, keepdim=True)
        shape = polar - level
        # rfft over the angles, harmonics 1..H: [re | im] = shape @ [cos | -sin]
        harmonics = shape @ self.harmonic_basis  # (N, bands, 2H)
        h_real, h_imag = harmonics[..., :self.harmonics], harmonics[..., self.harmonics:]
        magnitude = torch.sqrt(h_real * h_real + h_imag * h_imag)
        p_real, p_imag = h_real / (magnitude + 1e-6), h_imag / (magnitude + 1e-6)  # unit phase
        # |mean over bands of the phase|: 1 when every band peaks in the same direction
        coherence = torch.sqrt(p_real.mean(dim=1) ** 2 + p_imag.mean(dim=1) ** 2)
        # Re(phase[b + 1] * conj(phase[b])), averaged over neighbouring bands
        neighbours = (p_real[:, 1:] * p_real[:, :-1] + p_imag[:, 1:] * p_imag[:, :-1]).mean(dim=1)
        return torch.cat([level[..., 0], (magnitude / self.angles).flatten(1), shape.std(dim=2),
                          shape.amin(dim=2), shape.amax(dim=2), coherence, neighbours], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head((self.features(x) - self.feature_mean) / self.feature_scale)


class SpectralMotionFamily(SigmoidClassifier):
    name = "motion-spectrum"
    tasks = ("qc",)
    # ONNX since the spectra are matmuls (D-059); TensorRT not claimed: no engine of this graph has been built yet
    backends = ("torch", "onnx")
    default_architecture = DEFAULT_ARCHITECTURE

    def build(self, n_labels: int, in_channels: int, size: int, architecture: dict[str, Any]) -> nn.Module:
        arch = {**DEFAULT_ARCHITECTURE, **architecture}
        if size < arch["patch"]:
            raise ValueError(f"profile size {size} is smaller than the {arch['patch']} px patch")
        return MotionSpectrum(n_labels=n_labels, in_channels=in_channels, **arch)


FAMILIES = {"motion-spectrum": SpectralMotionFamily()}
