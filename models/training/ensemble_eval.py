"""Does the ensemble beat its members? Every detector and their weighted-boxes fusion, scored
on the same held-out phantoms by lesion-level average precision.

The fused boxes come from the fuse stage's own `weighted_boxes_fusion` with its defaults,
on calibrated scores in original pixels, exactly as the pipeline fuses them. A paired
bootstrap over images gives the interval of AP(ensemble) - AP(best member).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from radstream.domain.fusion import DEFAULT_IOU_THR, ModelBoxes, weighted_boxes_fusion
from radstream.domain.geometry import box_iou

from radstream.models.training.evaluation import Predicted, Predictor, calibrated_boxes, predict_images
from radstream.services.synthetic.phantoms import NODULE, Phantom

Predictions = list[tuple[np.ndarray, np.ndarray]]  # per image: (K, 4) boxes, (K,) scores


def ranked_hits(predictions: Predictions, truths: list[np.ndarray], min_iou: float) -> tuple[np.ndarray, np.ndarray]:
    """Every predicted box's score and whether it is a true positive (greedy one-to-one matching
    per image, highest score first)."""
    scores, hits = [], []
    for (boxes, s), truth in zip(predictions, truths):
        order = np.argsort(-s)
        taken = np.zeros(len(truth), dtype=bool)
        ious = box_iou(boxes[order], truth) if len(truth) and len(boxes) else np.zeros((len(boxes), 0))
        for row, score in zip(ious, s[order]):
            candidates = np.where(~taken & (row >= min_iou))[0]
            hit = len(candidates) > 0
            if hit:
                taken[candidates[np.argmax(row[candidates])]] = True
            scores.append(score)
            hits.append(hit)
    return np.asarray(scores, dtype=np.float64), np.asarray(hits, dtype=bool)


def average_precision(predictions: Predictions, truths: list[np.ndarray], min_iou: float = 0.3) -> float:
    """Area under the lesion-level precision-recall curve (all-point interpolation, as in VOC 2010+)."""
    n_lesions = sum(len(t) for t in truths)
    scores, hits = ranked_hits(predictions, truths, min_iou)
    if n_lesions == 0 or len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(hits[order])
    precision = tp / np.arange(1, len(tp) + 1)
    recall = tp / n_lesions
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(steps * envelope))


def member_predictions(backend: Predictor, phantoms: list[Phantom], label: str = NODULE,
                       results: Predicted | None = None) -> Predictions:
    """One detector's boxes in original pixels with calibrated scores, per phantom (from
    `results`, its `predict_images` over the phantoms, when given)."""
    if results is None:
        results = predict_images(backend, [p.image for p in phantoms])
    return calibrated_boxes(results, backend.manifest.calibration, label)


def fuse(members: dict[str, Predictions], weights: dict[str, float], label: str = NODULE) -> Predictions:
    fused = []
    for i in range(len(next(iter(members.values())))):
        inputs = [ModelBoxes(name, p[i][0].tolist(), p[i][1].tolist(), [label] * len(p[i][1]), weights[name])
                  for name, p in members.items()]
        boxes = weighted_boxes_fusion(inputs, DEFAULT_IOU_THR)  # as the fuse stage, by default
        fused.append((np.array([b.box for b in boxes], dtype=np.float64).reshape(-1, 4),
                      np.array([b.score for b in boxes], dtype=np.float64)))
    return fused


def evaluate_ensemble(backends: dict[str, Predictor], phantoms: list[Phantom], min_iou: float = 0.3,
                      resamples: int = 300, seed: int = 0,
                      results: dict[str, Predicted] | None = None) -> dict[str, Any]:
    """AP of each member and of the fused ensemble, with the paired bootstrap interval of the
    ensemble's gain over the best member. `results`: each member's `predict_images` over the
    phantoms, where the caller already ran it."""
    truths = [p.boxes[[l == NODULE for l in p.labels]].astype(np.float64) for p in phantoms]
    results = results or {}
    members = {name: member_predictions(b, phantoms, results=results.get(name)) for name, b in backends.items()}
    weights = {name: b.manifest.fusion_weight for name, b in backends.items()}
    fused = fuse(members, weights)
    ap = {name: average_precision(p, truths, min_iou) for name, p in members.items()}
    best = max(ap, key=ap.get)
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(resamples):
        idx = rng.integers(0, len(phantoms), len(phantoms))
        t = [truths[i] for i in idx]
        gains.append(average_precision([fused[i] for i in idx], t, min_iou)
                     - average_precision([members[best][i] for i in idx], t, min_iou))
    ensemble_ap = average_precision(fused, truths, min_iou)
    low, high = np.percentile(gains, [2.5, 97.5])
    return {"n_images": len(phantoms), "n_lesions": int(sum(len(t) for t in truths)), "min_iou": min_iou,
            "average_precision": {**{k: round(v, 4) for k, v in ap.items()}, "ensemble": round(ensemble_ap, 4)},
            "best_member": best, "gain": round(ensemble_ap - ap[best], 4),
            "gain_ci95": [round(float(low), 4), round(float(high), 4)]}
