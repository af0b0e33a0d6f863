"""Soft-NMS (Bodla et al., "Soft-NMS: improving object detection with one line of code", ICCV 2017)
across models, with provenance.

Every model's boxes of one label are pooled; the highest is kept and every other box's score is
decayed by its overlap with it (Gaussian: exp(-IoU^2 / sigma)), then the next highest, and so on;
boxes whose decayed score falls to `thresh` or below are dropped. Nothing is averaged: each
result is one model's box, so its provenance is that one box.

Follows the reference implementation (ensemble_boxes.soft_nms, method 2) step for step: scores
are weighted by weight / sum(weights) first, results come per label in sorted label order, each
in the order selected. The reference returns each kept box's weighted score *before* the decay
(`score="original"`); the paper's output, and our default, is the decayed score, which is what
ranks a duplicate below the box it duplicates (`score="decayed"`).
"""

from __future__ import annotations

import math

from radstream.domain.fusion import FusedBox, ModelBoxes

DEFAULT_SIGMA = 0.5
DEFAULT_THRESH = 0.001


def _overlap(a: list[float], b: list[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def soft_nms(inputs: list[ModelBoxes], sigma: float = DEFAULT_SIGMA, thresh: float = DEFAULT_THRESH,
             score: str = "decayed") -> list[FusedBox]:
    """Gaussian Soft-NMS per label over every model's boxes; `score`: "decayed" or "original"."""
    if score not in ("decayed", "original"):
        raise ValueError(f"soft_nms score must be 'decayed' or 'original', not {score!r}")
    total = sum(m.weight for m in inputs) or 1.0
    by_label: dict[str, list[dict]] = {}
    for m in inputs:
        for box, value, label in zip(m.boxes, m.scores, m.labels):
            x1, x2 = sorted((box[0], box[2]))
            y1, y2 = sorted((box[1], box[3]))
            if (x2 - x1) * (y2 - y1) == 0:
                continue  # the reference drops zero-area boxes
            by_label.setdefault(label, []).append(
                {"weighted": value * m.weight / total, "box": [x1, y1, x2, y2],
                 "source": {"model": m.model, "box": list(box), "score": value}})

    fused: list[FusedBox] = []
    for label in sorted(by_label):
        items = by_label[label]
        decayed = [item["weighted"] for item in items]
        # The reference's loop, swaps included, so that ties resolve as it resolves them.
        for i in range(len(items)):
            rest = decayed[i + 1:]
            if rest:
                j = max(range(len(rest)), key=lambda k: (rest[k], -k)) + i + 1  # argmax: first of the largest
                if decayed[i] < decayed[j]:
                    items[i], items[j] = items[j], items[i]
                    decayed[i], decayed[j] = decayed[j], decayed[i]
            for k in range(i + 1, len(items)):
                iou = _overlap(items[i]["box"], items[k]["box"])
                decayed[k] *= math.exp(-(iou * iou) / sigma)
        for item, value in zip(items, decayed):
            if value > thresh:
                fused.append(FusedBox(label, value if score == "decayed" else item["weighted"], item["box"],
                                      [item["source"]]))
    return fused
