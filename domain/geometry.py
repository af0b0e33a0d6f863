"""Box geometry: intersection over union, written once for fusion, FROC and the training metrics.

Boxes are (x1, y1, x2, y2) in pixels. A pair whose union is not positive (two empty or
inverted boxes) has IoU 0. The arithmetic is float64 and in the order of the
scalar formula (intersection, then area a + area b - intersection), so a value
taken from the matrix equals the one a pure-Python loop over floats gives.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Box = Sequence[float]


def box_iou(a: np.ndarray | Sequence[Box], b: np.ndarray | Sequence[Box]) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) boxes -> (N, M), float64."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    overlap = np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2])
    np.maximum(overlap, 0.0, out=overlap)
    inter = overlap[..., 0] * overlap[..., 1]
    size_a, size_b = a[:, 2:] - a[:, :2], b[:, 2:] - b[:, :2]
    union = (size_a[:, 0] * size_a[:, 1])[:, None] + (size_b[:, 0] * size_b[:, 1])[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def iou(a: Box, b: Box) -> float:
    """IoU of two boxes."""
    return float(box_iou(a, b)[0, 0])
