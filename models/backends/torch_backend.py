"""Runs a manifest's PyTorch weights on preprocessed batches."""

from __future__ import annotations

import io
import logging

import numpy as np
import torch

from ..centernet import decode_detections
from ..manifest import ModelLoadError, ModelManifest, read_weights
from ..nets import build_net
from ..outputs import Detection, ModelOutput


class TorchBackend:
    """One loaded model. `predict` takes tensors made by `apply_profile` with the manifest's profile.

    Detector output keeps every peak at or above `score_floor` (not the manifest's
    default thresholds) so that fusion and the threshold stage decide what counts.
    """

    def __init__(
        self,
        manifest: ModelManifest,
        device: str = "cpu",
        num_threads: int | None = None,
        score_floor: float = 0.05,
        top_k: int = 50,
    ) -> None:
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        self.manifest = manifest
        self.device = torch.device(device)
        self.score_floor = score_floor
        self.top_k = top_k
        weights = read_weights(manifest)  # sha256-verified, decrypted in memory: no plaintext on disk
        profile = manifest.input_profile
        path = manifest.artifact_path()
        try:
            self.net = build_net(manifest.family, len(manifest.labels), profile.channels, manifest.architecture)
            state = torch.load(io.BytesIO(weights), map_location=self.device, weights_only=True)
            self.net.load_state_dict(state)
        except (ValueError, RuntimeError, TypeError, OSError) as exc:
            raise ModelLoadError(f"{manifest.key}: cannot load weights from {path}: {exc}") from None
        self.net.to(self.device).eval()
        logging.getLogger(__name__).debug(
            "loaded %s from %s (sha256 %s, %s) on %s", manifest.key, path, manifest.artifact.sha256,
            "encrypted" if manifest.artifact.encrypted else "plaintext", self.device)

    def predict(self, batch: np.ndarray) -> list[ModelOutput]:
        """One ModelOutput per image of an (N, C, S, S) float32 batch."""
        profile = self.manifest.input_profile
        expected = (profile.channels, profile.size, profile.size)
        if batch.ndim != 4 or tuple(batch.shape[1:]) != expected:
            raise ValueError(f"{self.manifest.key}: expected batch (N, {expected}), got {batch.shape}")
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        with torch.inference_mode():
            if self.manifest.task in ("classifier", "qc"):
                return self._classify(x)
            return self._detect(x)

    def _classify(self, x: torch.Tensor) -> list[ModelOutput]:
        probabilities = torch.sigmoid(self.net(x)).cpu().numpy()
        labels = self.manifest.labels
        return [ModelOutput(classifications={l: float(p) for l, p in zip(labels, row)}) for row in probabilities]

    def _detect(self, x: torch.Tensor) -> list[ModelOutput]:
        heat_logits, box_pred = self.net(x)
        labels = self.manifest.labels
        decoded = decode_detections(heat_logits.cpu(), box_pred.cpu(), self.net.stride, self.top_k, self.score_floor)
        peak = torch.sigmoid(heat_logits).amax(dim=(2, 3)).cpu().numpy()  # image-level score per label
        outputs = []
        for found, peaks in zip(decoded, peak):
            detections = [Detection(labels[i], score, box) for i, score, box in found]
            outputs.append(ModelOutput(detections, {l: float(p) for l, p in zip(labels, peaks)}))
        return outputs
