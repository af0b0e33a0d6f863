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
import time
import types
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # rfdetr imports transformers; never reach for the hub

from rfdetr.models import SetCriterion  # noqa: E402
from rfdetr.models.backbone import Joiner  # noqa: E402
from rfdetr.models.backbone.backbone import Backbone  # noqa: E402
from rfdetr.models.backbone.dinov2 import DinoV2, compute_window_block_indexes  # noqa: E402
from rfdetr.models.backbone.dinov2_with_windowed_attn import (  # noqa: E402
    WindowedDinov2WithRegistersBackbone,
    WindowedDinov2WithRegistersConfig,
)
from rfdetr.models.backbone.projector import MultiScaleProjector  # noqa: E402
from rfdetr.models.lwdetr import LWDETR  # noqa: E402
from rfdetr.models.matcher import HungarianMatcher  # noqa: E402
from rfdetr.models.position_encoding import build_position_encoding  # noqa: E402
from rfdetr.models.transformer import build_transformer  # noqa: E402
from rfdetr.utilities.tensors import NestedTensor  # noqa: E402

from ..outputs import Detection, ModelOutput  # noqa: E402
from . import Progress, TrainingSet  # noqa: E402

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


def build_criterion(net: LWDETR) -> tuple[SetCriterion, dict[str, float]]:
    """rfdetr's Hungarian matcher and set criterion with RF-DETR's default costs and weights
    (IoU-aware BCE class loss, L1 and GIoU box losses, on every decoder layer and the encoder)."""
    matcher = HungarianMatcher(cost_class=2.0, cost_bbox=5.0, cost_giou=2.0, focal_alpha=0.25)
    base = {"loss_ce": 1.0, "loss_bbox": 5.0, "loss_giou": 2.0}
    weights = dict(base)
    for suffix in [f"_{i}" for i in range(net.transformer.dec_layers - 1)] + ["_enc"]:
        weights.update({k + suffix: v for k, v in base.items()})
    criterion = SetCriterion(net.class_embed.out_features, matcher=matcher, weight_dict=weights, focal_alpha=0.25,
                             losses=["labels", "boxes"], group_detr=net.group_detr, ia_bce_loss=True)
    return criterion, weights


def _targets(boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray], size: int,
             flip: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """Per image {labels, boxes}: x1, y1, x2, y2 tensor pixels -> normalised cx, cy, w, h, mirrored where flipped."""
    out = []
    for b, l, f in zip(boxes, labels, flip.tolist()):
        xyxy = torch.as_tensor(np.asarray(b, dtype=np.float32).reshape(-1, 4)) / size
        if f:
            xyxy = torch.stack([1 - xyxy[:, 2], xyxy[:, 1], 1 - xyxy[:, 0], xyxy[:, 3]], dim=1)
        cxcywh = torch.cat([(xyxy[:, :2] + xyxy[:, 2:]) / 2, (xyxy[:, 2:] - xyxy[:, :2]).clamp(min=1e-4)], dim=1)
        out.append({"labels": torch.as_tensor(np.asarray(l), dtype=torch.int64).reshape(-1), "boxes": cxcywh})
    return out


def train_rf_detr(net: LWDETR, data: TrainingSet, epochs: int, progress: Progress, seed: int = 0,
                  batch_size: int = 4, lr: float = 4e-4, clip: float = 0.1) -> float:
    """Set-prediction training with random horizontal flips; returns wall seconds.

    From scratch, so one AdamW rate for the whole net (rfdetr's 1e-4 assumes a pretrained
    DINOv2) with a one-cycle schedule, and rfdetr's gradient clipping at 0.1. The rate is the
    one that learned on phantoms: at 2e-3, what suits the CNNs, it fitted nothing (D-019).
    """
    generator = torch.Generator().manual_seed(seed)
    criterion, weights = build_criterion(net)
    criterion.train()
    inputs, size = torch.from_numpy(np.ascontiguousarray(data.x, dtype=np.float32)), data.x.shape[-1]
    labels = data.box_labels or [np.zeros(len(b), dtype=np.int64) for b in data.boxes]
    steps = epochs * -(-len(inputs) // batch_size)
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.1)
    started = time.perf_counter()
    net.train()
    for epoch in range(epochs):
        total = 0.0
        order = torch.randperm(len(inputs), generator=generator)
        for index in order.split(batch_size):
            flip = torch.rand(len(index), generator=generator) < 0.5
            batch = torch.where(flip[:, None, None, None], inputs[index].flip(-1), inputs[index])
            targets = _targets([data.boxes[i] for i in index], [labels[i] for i in index], size, flip)
            losses = criterion(net(batch), targets)
            loss = sum(losses[k] * w for k, w in weights.items())
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), clip)
            optimiser.step()
            schedule.step()
            total += loss.item() * len(index)
        progress(f"rf-detr epoch {epoch + 1}/{epochs} loss {total / len(inputs):.4f} "
                 f"({time.perf_counter() - started:.1f}s)")
    net.eval()
    return time.perf_counter() - started


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

    def train(self, net: nn.Module, data: TrainingSet, epochs: int, progress: Progress, seed: int = 0,
              **options: Any) -> float:
        return train_rf_detr(net, data, epochs, progress, seed=seed, **options)


FAMILIES = {"rf-detr": RfDetr()}
