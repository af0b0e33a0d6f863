"""Standard classifier backbones, kept small: torchvision's DenseNet and timm's EfficientNet.

Both are multi-label (one sigmoid per label), take any number of input channels (our
tensors are 1-channel) and trace to ONNX with a dynamic batch axis. They are built from
scratch; nothing is downloaded.

The DenseNet ends in a per-location logit map pooled by log-sum-exp, like the tiny
classifier (models/nets.py): a small nodule occupies a few cells of a 256 px image, and
global average pooling would dilute it. The map also takes the tiny family's dense
supervision when the training set has boxes. The EfficientNet keeps timm's own global
pooling and linear head: its labels (acquisition defects) are properties of whole images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import timm.models._efficientnet_builder as effnet_builder
import torch
from timm.models.efficientnet import EfficientNet
from torch import nn
from torchvision.models import DenseNet

from radstream.models.families.tiny import SigmoidClassifier

# The demo sizes (27k and 302k parameters, 0.2 and 1.3 MB): what trains on two CPU cores in
# minutes. Both families are far slower per FLOP than the tiny CNN there (DenseNet's
# concatenations, EfficientNet's depthwise convolutions), so they start small.
DEFAULT_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "densenet": {"growth_rate": 8, "block_config": [3, 4, 6], "num_init_features": 16, "bn_size": 2,
                 "stem_pool": True, "pool_sharpness": 8.0},
    "efficientnet": {"channel_multiplier": 0.35, "depth_multiplier": 0.35, "num_features": 192,
                     "stem_size": 16, "drop_rate": 0.0, "drop_path_rate": 0.0},
}

# EfficientNet-B0's stages (timm's notation); the multipliers scale channels and repeats.
_EFFICIENTNET_B0 = [
    ["ds_r1_k3_s1_e1_c16_se0.25"],
    ["ir_r2_k3_s2_e6_c24_se0.25"],
    ["ir_r2_k5_s2_e6_c40_se0.25"],
    ["ir_r3_k3_s2_e6_c80_se0.25"],
    ["ir_r3_k5_s1_e6_c112_se0.25"],
    ["ir_r4_k5_s2_e6_c192_se0.25"],
    ["ir_r1_k3_s1_e6_c320_se0.25"],
]


class DenseNetClassifier(nn.Module):
    """torchvision DenseNet features, a 1x1 logit map and log-sum-exp pooling.

    `block_config` sets the depth and the final stride (4 after the stem, x2 per
    transition); `stem_pool=False` drops the stem's max-pool for a map twice as fine.
    """

    def __init__(self, n_labels: int = 1, in_channels: int = 1, growth_rate: int = 8,
                 block_config: Sequence[int] = (3, 4, 6), num_init_features: int = 16, bn_size: int = 2,
                 stem_pool: bool = True, pool_sharpness: float = 8.0) -> None:
        super().__init__()
        features = DenseNet(growth_rate, tuple(block_config), num_init_features, bn_size,
                            drop_rate=0.0, num_classes=1).features
        features.conv0 = nn.Conv2d(in_channels, num_init_features, 7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(features.conv0.weight)
        if not stem_pool:
            features.pool0 = nn.Identity()
        self.features = features
        self.head = nn.Conv2d(features.norm5.num_features, n_labels, 1)
        nn.init.constant_(self.head.bias, -4.0)  # most locations hold no finding
        self.stride = (4 if stem_pool else 2) * 2 ** (len(block_config) - 1)
        self.pool_sharpness = pool_sharpness

    def logit_map(self, x: torch.Tensor) -> torch.Tensor:
        """(N, n_labels, S/stride, S/stride) per-location logits."""
        return self.head(torch.relu(self.features(x)))

    def pool(self, maps: torch.Tensor) -> torch.Tensor:
        r = self.pool_sharpness
        return torch.logsumexp(r * maps.flatten(2), dim=-1) / r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, n_labels) logits."""
        return self.pool(self.logit_map(x))


def build_efficientnet(n_labels: int, in_channels: int, channel_multiplier: float = 0.35,
                       depth_multiplier: float = 0.35, num_features: int = 192, stem_size: int = 16,
                       drop_rate: float = 0.0, drop_path_rate: float = 0.0) -> EfficientNet:
    """timm's EfficientNet with B0's stages scaled down.

    Built from the class rather than `timm.create_model("efficientnet_b0")`, which fixes
    both multipliers and a 1280-wide head (most of B0's 5M parameters).
    """
    round_chs = lambda chs: effnet_builder.round_channels(chs, channel_multiplier, 8)  # noqa: E731
    return EfficientNet(
        block_args=effnet_builder.decode_arch_def(_EFFICIENTNET_B0, depth_multiplier),
        num_classes=n_labels, num_features=num_features, in_chans=in_channels, stem_size=stem_size,
        round_chs_fn=round_chs, act_layer=nn.SiLU, drop_rate=drop_rate, drop_path_rate=drop_path_rate,
    )


class DenseNetFamily(SigmoidClassifier):
    name = "densenet"
    default_architecture = DEFAULT_ARCHITECTURES["densenet"]

    def build(self, n_labels: int, in_channels: int, size: int, architecture: dict[str, Any]) -> nn.Module:
        arch = {**DEFAULT_ARCHITECTURES[self.name], **architecture}
        return DenseNetClassifier(n_labels=n_labels, in_channels=in_channels, **arch)


class EfficientNetFamily(SigmoidClassifier):
    name = "efficientnet"
    default_architecture = DEFAULT_ARCHITECTURES["efficientnet"]

    def build(self, n_labels: int, in_channels: int, size: int, architecture: dict[str, Any]) -> nn.Module:
        return build_efficientnet(n_labels, in_channels, **{**DEFAULT_ARCHITECTURES[self.name], **architecture})


FAMILIES = {"densenet": DenseNetFamily(), "efficientnet": EfficientNetFamily()}
