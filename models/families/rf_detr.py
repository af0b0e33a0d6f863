"""RF-DETR, shrunk to train from scratch on a CPU: rfdetr's own LW-DETR parts at a smaller size.

The parts are rfdetr's: a windowed DINOv2-with-registers ViT, the multi-scale projector,
the LW-DETR deformable two-stage decoder with group-DETR queries, and the Hungarian
matcher and set criterion. Only the widths and depths are ours: rfdetr reads its ViT
sizes from fixed presets (Nano is ~30M parameters), so `_CompactDinoV2` builds the same
encoder from a smaller config. The model is NMS-free: `decode` is top-k over queries.
"""

from __future__ import annotations

import copy
import os
import types
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # rfdetr imports transformers; never reach for the hub

from rfdetr.models.backbone import Joiner  # noqa: E402
from rfdetr.models.backbone.backbone import Backbone  # noqa: E402
from rfdetr.models.backbone.dinov2 import DinoV2, compute_window_block_indexes  # noqa: E402
from rfdetr.models.backbone.dinov2_with_windowed_attn import (  # noqa: E402
    WindowedDinov2WithRegistersBackbone,
    WindowedDinov2WithRegistersConfig,
)
from rfdetr.models.backbone.projector import MultiScaleProjector  # noqa: E402
from rfdetr.models.lwdetr import LWDETR  # noqa: E402
from rfdetr.models.position_encoding import build_position_encoding  # noqa: E402
from rfdetr.models.transformer import build_transformer  # noqa: E402

from radstream.models.outputs import Detection, ModelOutput  # noqa: E402

DEFAULT_ARCHITECTURE: dict[str, Any] = {
    "vit_width": 128,  # below rfdetr's smallest DINOv2 preset (small, 384): this one trains on a CPU
    "vit_depth": 4,
    "vit_heads": 2,
    "vit_mlp_ratio": 2,
    "vit_registers": 0,  # as in Nano (dinov2_windowed_small has none)
    "feature_every": 2,  # stages 2 and 4 feed the projector; rfdetr's rule then makes block 2 (of 0-3) global
    "patch_size": 16,  # Nano's
    "num_windows": 2,  # Nano's
    "projector_scale": "P4",  # comma-separated levels of P3, P4, P5; Nano uses P4
    "hidden_dim": 64,
    "dim_feedforward": 256,
    "dec_layers": 2,  # Nano's
    "sa_nheads": 4,
    "ca_nheads": 4,
    "dec_n_points": 4,
    "num_queries": 16,  # at most three nodules per image
    "group_detr": 4,  # group-DETR: 4 x 16 queries while training, the first 16 at inference
}

_LEVEL_SCALE = {"P3": 2.0, "P4": 1.0, "P5": 0.5}


class _CompactDinoV2(DinoV2):
    """rfdetr's DinoV2 wrapper around a windowed ViT whose width and depth we choose.

    `DinoV2.__init__` only knows the small/base/large JSON presets; this sets the same
    attributes from an explicit config, so `forward` and `export` are rfdetr's own.
    """

    def __init__(self, arch: dict[str, Any], in_channels: int, size: int) -> None:
        nn.Module.__init__(self)
        patch, depth, every = int(arch["patch_size"]), int(arch["vit_depth"]), int(arch["feature_every"])
        out_indexes = list(range(every, depth + 1, every))
        config = WindowedDinov2WithRegistersConfig(
            hidden_size=int(arch["vit_width"]), num_hidden_layers=depth, num_attention_heads=int(arch["vit_heads"]),
            mlp_ratio=int(arch["vit_mlp_ratio"]), num_register_tokens=int(arch["vit_registers"]),
            image_size=size, patch_size=patch, num_channels=in_channels, layerscale_value=1.0,
            layer_norm_eps=1e-6, num_windows=int(arch["num_windows"]),
            window_block_indexes=compute_window_block_indexes(out_indexes),
            out_features=[f"stage{i}" for i in out_indexes], return_dict=False,
        )
        self.shape = (size, size)
        self.patch_size = patch
        self.num_windows = int(arch["num_windows"])
        self.encoder = WindowedDinov2WithRegistersBackbone(config)
        self._out_feature_channels = [int(arch["vit_width"])] * len(out_indexes)
        self._export = False


class _CompactBackbone(Backbone):
    """rfdetr's Backbone (encoder + MultiScaleProjector) over `_CompactDinoV2`."""

    def __init__(self, encoder: _CompactDinoV2, hidden_dim: int, levels: list[str]) -> None:
        nn.Module.__init__(self)
        self.encoder = encoder
        self.projector_scale = levels
        self.projector = MultiScaleProjector(
            in_channels=encoder._out_feature_channels, out_channels=hidden_dim,
            scale_factors=[_LEVEL_SCALE[level] for level in levels], layer_norm=True,
        )
        self.cross_attn_projector = None
        self._export = False


def _decoder_args(arch: dict[str, Any], levels: list[str]) -> types.SimpleNamespace:
    """The fields rfdetr's `build_transformer` reads (its builders take a namespace)."""
    return types.SimpleNamespace(
        hidden_dim=int(arch["hidden_dim"]), sa_nheads=int(arch["sa_nheads"]), ca_nheads=int(arch["ca_nheads"]),
        num_queries=int(arch["num_queries"]), dropout=0.0, dim_feedforward=int(arch["dim_feedforward"]),
        dec_layers=int(arch["dec_layers"]), group_detr=int(arch["group_detr"]), two_stage=True,
        num_feature_levels=len(levels), dec_n_points=int(arch["dec_n_points"]), lite_refpoint_refine=True,
        decoder_norm="LN", bbox_reparam=True,
    )


def build_lwdetr(n_labels: int, in_channels: int, size: int, architecture: dict[str, Any]) -> LWDETR:
    """An LWDETR with `n_labels` sigmoid classes (no background column: the loss is focal)."""
    arch = {**DEFAULT_ARCHITECTURE, **architecture}
    block = int(arch["patch_size"]) * int(arch["num_windows"])
    if size % block:
        raise ValueError(f"rf-detr input size {size} must be a multiple of patch_size * num_windows = {block}")
    levels = str(arch["projector_scale"]).split(",")
    encoder = _CompactDinoV2(arch, in_channels, size)
    backbone = Joiner(_CompactBackbone(encoder, int(arch["hidden_dim"]), levels),
                      build_position_encoding(int(arch["hidden_dim"]), "sine"))
    return LWDETR(backbone, build_transformer(_decoder_args(arch, levels)), None, num_classes=n_labels,
                  num_queries=int(arch["num_queries"]), aux_loss=True, group_detr=int(arch["group_detr"]),
                  two_stage=True, lite_refpoint_refine=True, bbox_reparam=True)


class _RawDetections(nn.Module):
    """(N, C, S, S) -> (pred_logits (N, Q, L), pred_boxes (N, Q, 4) cx, cy, w, h in tensor pixels).

    Boxes leave the graph in pixels because `decode` is not told the input size. This is
    rfdetr's export path (`LWDETR.export`: a static position table, no padding masks, one
    query group) run on a private copy, so the served network is never switched over.
    """

    def __init__(self, net: LWDETR) -> None:
        super().__init__()
        self.net = copy.deepcopy(net).eval()
        self.net.export()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        boxes, logits = self.net(x)
        return logits, boxes * x.shape[-1]


def decode_queries(logits: torch.Tensor, boxes: torch.Tensor, labels: Sequence[str], score_floor: float,
                   top_k: int) -> list[ModelOutput]:
    """Sigmoid, then top-k over queries x labels (no NMS: set prediction makes one box per object).

    `boxes` are cx, cy, w, h in tensor pixels; detections come back as x1, y1, x2, y2. A label's
    image-level score is its best kept detection (0.0 when none is kept).
    """
    scores = logits.float().sigmoid()
    n, queries, n_labels = scores.shape
    best, index = scores.reshape(n, queries * n_labels).topk(min(top_k, queries * n_labels), dim=1)
    cx, cy, w, h = boxes.float().unbind(-1)
    xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
    outputs = []
    for i in range(n):
        keep = best[i] >= score_floor
        found = [Detection(labels[k % n_labels], s, tuple(xyxy[i, k // n_labels].tolist()))
                 for s, k in zip(best[i][keep].tolist(), index[i][keep].tolist())]
        image = {label: max((d.score for d in found if d.label == label), default=0.0) for label in labels}
        outputs.append(ModelOutput(found, image))
    return outputs


class RfDetr:
    name = "rf-detr"
    tasks = ("detector",)
    backends = ("torch", "onnx", "tensorrt")
    default_architecture = DEFAULT_ARCHITECTURE

    def build(self, n_labels: int, in_channels: int, size: int, architecture: dict[str, Any]) -> nn.Module:
        return build_lwdetr(n_labels, in_channels, size, architecture)

    def raw_module(self, net: nn.Module) -> nn.Module:
        return _RawDetections(net).eval()

    def decode(self, raw: Sequence[torch.Tensor], labels: Sequence[str], score_floor: float,
               top_k: int) -> list[ModelOutput]:
        return decode_queries(raw[0], raw[1], labels, score_floor, top_k)


FAMILIES = {"rf-detr": RfDetr()}
