"""EfficientDet (the `effdet` package): an EfficientNet backbone, BiFPN and shared class/box heads.

D0 is the CPU demo's starting point, scaled down (a TinyNet-E backbone from the EfficientNet
family, 48 BiFPN channels, 2 repeats) so that it trains on 2 cores in minutes; production
would set `architecture` to D3's. The exported graph includes the anchor decoding, so it is
static: (N, A, L) scores and (N, A, 4) boxes. Only top-k and NMS run on the host.
Anchors start at 8 px (anchor_scale 1 at stride 8) because nodules are 4-20 px at 256.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from effdet import EfficientDet, get_efficientdet_config
from effdet.anchors import Anchors
from torch import nn
from torchvision.ops import batched_nms

from radstream.models.outputs import ModelOutput
from radstream.models.families.box_lists import decode_padded, pad_detections

DEFAULT_ARCHITECTURE: dict[str, Any] = {
    "base": "efficientdet_d0", "backbone": "tinynet_e", "fpn_channels": 48, "fpn_cell_repeats": 2,
    "box_class_repeats": 2, "anchor_scale": 1.0, "match_threshold": 0.5,
}
ANCHOR_KEYS = ("min_level", "max_level", "num_scales", "aspect_ratios")  # optional overrides of D0's
NMS_IOU = 0.5
CANDIDATES = 1000  # top-scoring anchors kept before NMS


def _config(n_labels: int, in_channels: int, size: int, arch: dict[str, Any]) -> Any:
    config = get_efficientdet_config(arch["base"])
    config.update({
        "num_classes": n_labels, "image_size": (size, size), "backbone_name": arch["backbone"],
        "fpn_channels": arch["fpn_channels"], "fpn_cell_repeats": arch["fpn_cell_repeats"],
        "box_class_repeats": arch["box_class_repeats"], "anchor_scale": arch["anchor_scale"],
        "backbone_args": {"in_chans": in_channels, "drop_path_rate": 0.0},
    })
    config.update({k: arch[k] for k in ANCHOR_KEYS if k in arch})
    return config


class _DecodedHeads(nn.Module):
    """EfficientDet plus in-graph anchor decoding: sigmoid scores and x1, y1, x2, y2 boxes."""

    def __init__(self, net: EfficientDet) -> None:
        super().__init__()
        self.net = net
        anchors = Anchors.from_config(net.config).boxes  # (A, 4) y1, x1, y2, x2
        self.register_buffer("anchors", anchors.float(), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        class_out, box_out = self.net(x)
        n, n_labels = x.shape[0], self.net.config.num_classes
        logits = torch.cat([c.permute(0, 2, 3, 1).reshape(n, -1, n_labels) for c in class_out], 1)
        codes = torch.cat([b.permute(0, 2, 3, 1).reshape(n, -1, 4) for b in box_out], 1)
        a = self.anchors
        ya, xa = (a[:, 0] + a[:, 2]) / 2, (a[:, 1] + a[:, 3]) / 2
        ha, wa = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
        ty, tx, th, tw = codes.unbind(-1)  # effdet's FasterRcnnBoxCoder parametrisation
        cy, cx = ty * ha + ya, tx * wa + xa
        h, w = torch.exp(th) * ha, torch.exp(tw) * wa
        boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
        return torch.sigmoid(logits), boxes


def nms_detections(scores: torch.Tensor, boxes: torch.Tensor, keep: int
                   ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per image: the CANDIDATES best (anchor, label) pairs, class-wise NMS, best `keep`."""
    found = []
    for s, b in zip(scores, boxes):
        n_labels = s.shape[1]
        top, index = s.flatten().topk(min(CANDIDATES, s.numel()))
        anchor, label = index // n_labels, index % n_labels
        chosen = batched_nms(b[anchor], top, label, NMS_IOU)[:keep]
        found.append((b[anchor][chosen], top[chosen], label[chosen]))
    return found


class EfficientDetFamily:
    name = "efficientdet"
    tasks = ("detector",)
    backends = ("torch", "onnx", "tensorrt")
    default_architecture = DEFAULT_ARCHITECTURE  # the anchor keys, when absent, are the base config's

    def build(self, n_labels: int, in_channels: int, size: int, architecture: dict[str, Any]) -> nn.Module:
        arch = {**DEFAULT_ARCHITECTURE, **architecture}
        return EfficientDet(_config(n_labels, in_channels, size, arch), pretrained_backbone=False)

    def raw_module(self, net: nn.Module) -> nn.Module:
        return _DecodedHeads(net).eval()

    def decode(self, raw: Sequence[torch.Tensor], labels: Sequence[str], score_floor: float,
               top_k: int) -> list[ModelOutput]:
        scores, boxes = (t.detach().float().cpu() for t in raw[:2])
        padded = pad_detections(nms_detections(scores, boxes, top_k), top_k)
        return decode_padded(padded, labels, score_floor, top_k)


FAMILIES = {"efficientdet": EfficientDetFamily()}
