"""CenterNet decoding: heatmap peaks and box regressions to boxes in tensor pixels.

Training encodes boxes the same way (models/training/centernet_loss.py: `encode_targets`);
both use the same stride and size parametrisation.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def decode_detections(
    heat_logits: torch.Tensor, box_pred: torch.Tensor, stride: int, top_k: int, score_floor: float
) -> list[list[tuple[int, float, tuple[float, float, float, float]]]]:
    """Per image: (label index, score, box in tensor pixels) for heatmap peaks >= score_floor.

    Peaks are local maxima under a 3x3 max-pool, the CenterNet stand-in for NMS.
    """
    heat = torch.sigmoid(heat_logits)
    peaks = heat * heat.eq(F.max_pool2d(heat, 3, stride=1, padding=1)).float()
    n, n_labels, gh, gw = heat.shape
    k = min(top_k, n_labels * gh * gw)
    scores, indices = peaks.flatten(1).topk(k, dim=1)
    results = []
    for i in range(n):
        found = []
        for score, index in zip(scores[i].tolist(), indices[i].tolist()):
            if score < score_floor:
                break
            label, cell = divmod(index, gh * gw)
            iy, ix = divmod(cell, gw)
            log_w, log_h, off_x, off_y = box_pred[i, :, iy, ix].tolist()
            cx, cy = (ix + off_x) * stride, (iy + off_y) * stride
            half_w, half_h = math.exp(log_w) * stride / 2, math.exp(log_h) * stride / 2
            found.append((label, score, (cx - half_w, cy - half_h, cx + half_w, cy + half_h)))
        results.append(found)
    return results
