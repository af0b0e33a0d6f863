"""CenterNet training targets and loss (the tiny detector); decoding is serving's
(models/centernet.py), with the same stride and size parametrisation.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F


def _gaussian_sigma(box_w: float, box_h: float) -> float:
    """Heatmap spread grows with object size, as in CenterNet (in output cells)."""
    return max(0.7, min(box_w, box_h) / 6.0)


def encode_targets(
    boxes: np.ndarray, label_ids: list[int], n_labels: int, size: int, stride: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heatmap (L, G, G), box target (4, G, G) and centre mask (G, G) for one image.

    `boxes` are in tensor pixels. The box target holds log(w/stride), log(h/stride)
    and the sub-cell centre offset.
    """
    grid = size // stride
    heat = np.zeros((n_labels, grid, grid), dtype=np.float32)
    box_target = np.zeros((4, grid, grid), dtype=np.float32)
    mask = np.zeros((grid, grid), dtype=np.float32)
    ys, xs = np.mgrid[0:grid, 0:grid].astype(np.float32)
    for (x1, y1, x2, y2), label in zip(np.asarray(boxes).reshape(-1, 4), label_ids):
        bw, bh = (x2 - x1) / stride, (y2 - y1) / stride
        if bw <= 0 or bh <= 0:
            continue
        cx, cy = (x1 + x2) / 2 / stride, (y1 + y2) / 2 / stride
        ix, iy = min(grid - 1, int(cx)), min(grid - 1, int(cy))
        sigma = _gaussian_sigma(bw, bh)
        blob = np.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma**2))
        heat[label] = np.maximum(heat[label], blob)
        box_target[:, iy, ix] = (math.log(bw), math.log(bh), cx - ix, cy - iy)
        mask[iy, ix] = 1.0
    return heat, box_target, mask


def heatmap_focal_loss(heat_logits: torch.Tensor, heat: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of centres."""
    pred = torch.sigmoid(heat_logits).clamp(1e-4, 1 - 1e-4)
    positive = heat.eq(1.0).float()
    negative_weight = (1 - heat) ** 4
    pos_loss = -(torch.log(pred) * (1 - pred) ** 2 * positive).sum()
    neg_loss = -(torch.log(1 - pred) * pred**2 * negative_weight * (1 - positive)).sum()
    return (pos_loss + neg_loss) / positive.sum().clamp(min=1.0)


def centernet_loss(
    heat_logits: torch.Tensor,
    box_pred: torch.Tensor,
    heat: torch.Tensor,
    box_target: torch.Tensor,
    mask: torch.Tensor,
    box_weight: float = 1.0,
) -> torch.Tensor:
    """Heatmap focal loss plus L1 on sizes/offsets at the centre cells."""
    m = mask.unsqueeze(1)
    box_loss = F.l1_loss(box_pred * m, box_target * m, reduction="sum") / (m.sum() * 4).clamp(min=1.0)
    return heatmap_focal_loss(heat_logits, heat) + box_weight * box_loss
