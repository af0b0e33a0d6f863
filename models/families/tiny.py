"""The tiny from-scratch networks (models/nets.py): a CenterNet detector and a CNN classifier.

They stay as families of their own: the pixel-QC model and the ablation harness use the
classifier, and both are small enough to train in under a minute.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from radstream.models.centernet import decode_detections
from radstream.models.nets import TinyClassifier, TinyDetector
from radstream.models.outputs import Detection, ModelOutput


class _Heads(nn.Module):
    """CenterNet raw outputs with the sigmoid applied in-graph: heatmap probabilities, boxes."""

    def __init__(self, net: TinyDetector) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heat_logits, box = self.net(x)
        return torch.sigmoid(heat_logits), box


class Probabilities(nn.Module):
    """A classifier's traced graph: logits to sigmoid probabilities, so every backend decodes alike."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (torch.sigmoid(self.net(x)),)


def decode_probabilities(raw: Sequence[torch.Tensor], labels: Sequence[str]) -> list[ModelOutput]:
    """Classifier families: raw[0] is (N, L) probabilities."""
    rows = raw[0].float().cpu().numpy()
    return [ModelOutput(classifications={l: float(p) for l, p in zip(labels, row)}) for row in rows]


class SigmoidClassifier:
    """What every classifier family shares: a (N, L) sigmoid head, decoded per label."""

    tasks = ("classifier", "qc")
    backends = ("torch", "onnx", "tensorrt")

    def raw_module(self, net: nn.Module) -> nn.Module:
        return Probabilities(net).eval()

    def decode(self, raw: Sequence[torch.Tensor], labels: Sequence[str], score_floor: float,
               top_k: int) -> list[ModelOutput]:
        return decode_probabilities(raw, labels)


class TinyCnn(SigmoidClassifier):
    name = "tiny-cnn"
    default_architecture: dict[str, Any] = {"width": 16}

    def build(self, n_labels: int, in_channels: int, size: int, architecture: dict[str, Any]) -> nn.Module:
        return TinyClassifier(n_labels=n_labels, in_channels=in_channels,
                              **{**self.default_architecture, **architecture})


class TinyCenterNet:
    name = "tiny-centernet"
    tasks = ("detector",)
    backends = ("torch", "onnx", "tensorrt")
    default_architecture: dict[str, Any] = {"width": 16}

    def build(self, n_labels: int, in_channels: int, size: int, architecture: dict[str, Any]) -> nn.Module:
        return TinyDetector(n_labels=n_labels, in_channels=in_channels,
                            **{**self.default_architecture, **architecture})

    def raw_module(self, net: nn.Module) -> nn.Module:
        return _Heads(net).eval()

    def decode(self, raw: Sequence[torch.Tensor], labels: Sequence[str], score_floor: float,
               top_k: int) -> list[ModelOutput]:
        heat, box = (t.float().cpu() for t in raw[:2])
        logits = torch.logit(heat.clamp(1e-6, 1 - 1e-6))
        decoded = decode_detections(logits, box, TinyDetector.stride, top_k, score_floor)
        peaks = heat.amax(dim=(2, 3)).numpy()  # image-level score per label
        return [ModelOutput([Detection(labels[i], s, b) for i, s, b in found],
                            {l: float(p) for l, p in zip(labels, row)})
                for found, row in zip(decoded, peaks)]


FAMILIES = {"tiny-cnn": TinyCnn(), "tiny-centernet": TinyCenterNet()}
