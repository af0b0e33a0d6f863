"""Does the ensemble beat its members, and which fusion should it use? Every detector and their
fusion by each method the fuse stage offers (WBF, NMW, Soft-NMS), scored on the same held-out
phantoms by lesion-level average precision.

The fused boxes come from the fuse stage's own `fuse_with` with its defaults, on calibrated
scores in original pixels, exactly as the pipeline fuses them. One paired bootstrap over images
(the same resamples for every method) gives each method's AP interval, its gain over the best
member and its difference from WBF, the default.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from radstream.domain.fusion import DEFAULT_IOU_THR, ModelBoxes
from radstream.domain.fusion_methods import DEFAULT_FUSION_METHOD, FUSION_METHODS, fuse_with
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
    scores, hits = ranked_hits(predictions, truths, min_iou)
    return _ap(scores, hits, sum(len(t) for t in truths))


def _ap(scores: np.ndarray, hits: np.ndarray, n_lesions: int) -> float:
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


def fuse(members: dict[str, Predictions], weights: dict[str, float], label: str = NODULE,
         method: str = DEFAULT_FUSION_METHOD) -> Predictions:
    fused = []
    for i in range(len(next(iter(members.values())))):
        inputs = [ModelBoxes(name, p[i][0].tolist(), p[i][1].tolist(), [label] * len(p[i][1]), weights[name])
                  for name, p in members.items()]
        boxes = fuse_with(method, inputs, DEFAULT_IOU_THR)  # as the fuse stage, by default
        fused.append((np.array([b.box for b in boxes], dtype=np.float64).reshape(-1, 4),
                      np.array([b.score for b in boxes], dtype=np.float64)))
    return fused


class _Hits:
    """Each image's scored hits, computed once: a bootstrap resample of images only regroups them."""

    def __init__(self, predictions: Predictions, truths: list[np.ndarray], min_iou: float) -> None:
        self.per_image = [ranked_hits([p], [t], min_iou) for p, t in zip(predictions, truths)]
        self.lesions = [len(t) for t in truths]

    def ap(self, idx: np.ndarray | None = None) -> float:
        rows = range(len(self.per_image)) if idx is None else idx
        scores = np.concatenate([self.per_image[i][0] for i in rows] or [np.zeros(0)])
        hits = np.concatenate([self.per_image[i][1] for i in rows] or [np.zeros(0, dtype=bool)])
        return _ap(scores, hits, sum(self.lesions[i] for i in rows))


def _ci(values: list[float]) -> list[float]:
    low, high = np.percentile(values, [2.5, 97.5])
    return [round(float(low), 4), round(float(high), 4)]


def evaluate_ensemble(backends: dict[str, Predictor], phantoms: list[Phantom], min_iou: float = 0.3,
                      resamples: int = 300, seed: int = 0,
                      results: dict[str, Predicted] | None = None) -> dict[str, Any]:
    """AP of each member and of the ensemble fused by each method, with paired bootstrap intervals:
    each method's AP, its gain over the best member and its difference from WBF. The top-level
    `ensemble`, `gain` and `gain_ci95` are the default method's (WBF). `results`: each member's
    `predict_images` over the phantoms, where the caller already ran it."""
    truths = [p.boxes[[l == NODULE for l in p.labels]].astype(np.float64) for p in phantoms]
    results = results or {}
    members = {name: member_predictions(b, phantoms, results=results.get(name)) for name, b in backends.items()}
    weights = {name: b.manifest.fusion_weight for name, b in backends.items()}
    member_hits = {name: _Hits(p, truths, min_iou) for name, p in members.items()}
    ap = {name: h.ap() for name, h in member_hits.items()}
    best = max(ap, key=ap.get)
    fused = {method: _Hits(fuse(members, weights, method=method), truths, min_iou) for method in FUSION_METHODS}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {method: [] for method in (*FUSION_METHODS, best)}
    for _ in range(resamples):
        idx = rng.integers(0, len(phantoms), len(phantoms))
        for method, hits in fused.items():
            draws[method].append(hits.ap(idx))
        draws[best].append(member_hits[best].ap(idx))
    methods = {}
    for method, hits in fused.items():
        value = hits.ap()
        methods[method] = {
            "average_precision": round(value, 4), "ap_ci95": _ci(draws[method]),
            "gain": round(value - ap[best], 4),
            "gain_ci95": _ci([a - b for a, b in zip(draws[method], draws[best])]),
            "vs_wbf": round(value - fused["wbf"].ap(), 4),
            "vs_wbf_ci95": _ci([a - b for a, b in zip(draws[method], draws["wbf"])]),
        }
    default = methods[DEFAULT_FUSION_METHOD]
    return {"n_images": len(phantoms), "n_lesions": int(sum(len(t) for t in truths)), "min_iou": min_iou,
            "resamples": resamples,
            "average_precision": {**{k: round(v, 4) for k, v in ap.items()}, "ensemble": default["average_precision"]},
            "best_member": best, "gain": default["gain"], "gain_ci95": default["gain_ci95"], "methods": methods}
