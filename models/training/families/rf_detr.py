"""Training RF-DETR: rfdetr's Hungarian matcher and set criterion, with random horizontal flips."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

import radstream.models.families.rf_detr  # noqa: F401  (sets HF_HUB_OFFLINE before rfdetr loads)
from radstream.models.training.families import Progress, TrainingSet
from rfdetr.models import SetCriterion
from rfdetr.models.lwdetr import LWDETR
from rfdetr.models.matcher import HungarianMatcher


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



TRAINERS = {"rf-detr": train_rf_detr}
