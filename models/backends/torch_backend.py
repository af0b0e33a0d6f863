"""Runs a manifest's PyTorch weights on preprocessed batches, on the CPU or on CUDA."""

from __future__ import annotations

import io
import logging

import numpy as np
import torch

from ..families import family_of
from ..manifest import ModelLoadError, ModelManifest, read_weights
from ..outputs import ModelOutput


class TorchBackend:
    """One loaded model. `predict` takes tensors made by `apply_profile` with the manifest's profile.

    Detector output keeps every box at or above `score_floor` (not the manifest's
    default thresholds) so that fusion and the threshold stage decide what counts.
    On CUDA the graph runs in `half` precision (FP16 autocast) with channels_last.
    """

    def __init__(
        self,
        manifest: ModelManifest,
        device: str = "cpu",
        num_threads: int | None = None,
        score_floor: float = 0.05,
        top_k: int = 50,
        net: torch.nn.Module | None = None,
    ) -> None:
        """`net`: a trained network already in memory (the ablation harness, build-demo's
        held-out check); the manifest's artifact is then not read."""
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        self.manifest = manifest
        self.device = torch.device(device)
        self.score_floor = score_floor
        self.top_k = top_k
        self.family = family_of(manifest)
        if net is None:
            net = self._load(manifest)
        self.net = net.eval()
        self.raw = self.family.raw_module(net).to(self.device).eval()
        if self.device.type == "cuda":
            self.raw = self.raw.to(memory_format=torch.channels_last)

    def _load(self, manifest: ModelManifest) -> torch.nn.Module:
        weights = read_weights(manifest)  # sha256-verified, decrypted in memory: no plaintext on disk
        profile = manifest.input_profile
        path = manifest.artifact_path()
        try:
            net = self.family.build(len(manifest.labels), profile.channels, profile.size, manifest.architecture)
            state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        except (ValueError, RuntimeError, TypeError, OSError, KeyError) as exc:
            raise ModelLoadError(f"{manifest.key}: cannot load weights from {path}: {exc}") from None
        logging.getLogger(__name__).debug(
            "loaded %s v%s (family %s) from %s (sha256 %s, %s) on torch-%s", manifest.name, manifest.version,
            manifest.family, path, manifest.artifact.sha256,
            "encrypted" if manifest.artifact.encrypted else "plaintext", self.device.type)
        return net

    @property
    def name(self) -> str:
        return f"torch-{self.device.type}"

    def predict(self, batch: np.ndarray) -> list[ModelOutput]:
        """One ModelOutput per image of an (N, C, S, S) float32 batch."""
        profile = self.manifest.input_profile
        expected = (profile.channels, profile.size, profile.size)
        if batch.ndim != 4 or tuple(batch.shape[1:]) != expected:
            raise ValueError(f"{self.manifest.key}: expected batch (N, {expected}), got {batch.shape}")
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        with torch.inference_mode():
            if self.device.type == "cuda":
                x = x.to(memory_format=torch.channels_last)
                with torch.autocast("cuda", dtype=torch.float16):
                    raw = self.raw(x)
            else:
                raw = self.raw(x)
            raw = [t.float().cpu() for t in raw]
        return self.family.decode(raw, self.manifest.labels, self.score_floor, self.top_k)
