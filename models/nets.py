"""The two small demo networks: an image-level classifier and a CenterNet-style detector.

Both stay well under 1M parameters so a 256 px CPU forward pass takes milliseconds.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _conv_block(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class TinyClassifier(nn.Module):
    """Multi-label image classifier: conv blocks to stride 8, a per-location logit map, global pooling.

    Pooling a dense logit map (log-sum-exp, between mean and max) lets one small
    finding decide the image label; `logit_map` is exposed so training can also
    supervise it densely, which makes the tiny net learn in seconds.
    """

    stride = 8

    def __init__(self, n_labels: int = 1, in_channels: int = 1, width: int = 16) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv_block(in_channels, w // 2, stride=2),
            _conv_block(w // 2, w, stride=2),
            _conv_block(w, 2 * w, stride=2),
            _conv_block(2 * w, 2 * w),
            _conv_block(2 * w, 3 * w, dilation=2),
            _conv_block(3 * w, 3 * w, dilation=4),
        )
        self.head = nn.Conv2d(3 * w, n_labels, 1)
        nn.init.constant_(self.head.bias, -4.0)  # most locations hold no finding
        self.pool_sharpness = 8.0

    def logit_map(self, x: torch.Tensor) -> torch.Tensor:
        """(N, n_labels, S/8, S/8) per-location logits."""
        return self.head(self.features(x))

    def pool(self, maps: torch.Tensor) -> torch.Tensor:
        """Log-sum-exp pooling to image logits, (N, n_labels)."""
        r = self.pool_sharpness
        return torch.logsumexp(r * maps.flatten(2), dim=-1) / r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return (N, n_labels) logits; apply sigmoid for probabilities."""
        return self.pool(self.logit_map(x))


class TinyDetector(nn.Module):
    """Fully convolutional CenterNet: per-label centre heatmaps, box size and offset at stride 4."""

    stride = 4

    def __init__(self, n_labels: int = 1, in_channels: int = 1, width: int = 16) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(
            _conv_block(in_channels, w // 2, stride=2),
            _conv_block(w // 2, w, stride=2),
            _conv_block(w, 2 * w),
        )  # stride 4
        self.deep = nn.Sequential(
            _conv_block(2 * w, 3 * w, stride=2),
            _conv_block(3 * w, 3 * w, dilation=2),
            _conv_block(3 * w, 3 * w, dilation=4),
            nn.Conv2d(3 * w, 2 * w, 1),
        )  # stride 8, wide context to tell nodules from rib crossings
        self.neck = _conv_block(2 * w, w)
        self.heatmap = nn.Conv2d(w, n_labels, 1)
        self.box = nn.Conv2d(w, 4, 1)  # log-size (w, h) in stride units, centre offset (x, y)
        nn.init.constant_(self.heatmap.bias, -4.0)  # start near the empty-image prior

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return heatmap logits (N, L, S/4, S/4) and box regression (N, 4, S/4, S/4)."""
        shallow = self.stem(x)
        deep = F.interpolate(self.deep(shallow), size=shallow.shape[-2:], mode="nearest")
        fused = self.neck(shallow + deep)
        return self.heatmap(fused), self.box(fused)


NET_FAMILIES: dict[str, type[nn.Module]] = {
    "tiny-cnn": TinyClassifier,
    "tiny-centernet": TinyDetector,
}


def build_net(family: str, n_labels: int, in_channels: int, architecture: dict[str, int]) -> nn.Module:
    """Instantiate the network a manifest's family names."""
    if family not in NET_FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(NET_FAMILIES)}")
    return NET_FAMILIES[family](n_labels=n_labels, in_channels=in_channels, **architecture)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
