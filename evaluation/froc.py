"""FROC for detectors: lesion-level sensitivity at fixed false positives per image.

Per image and label, predicted boxes are taken in descending score; each one matches
the unmatched ground-truth box of that label with which it has the highest IoU, if
that IoU >= the matching threshold (default 0.5). A matched box is a true positive;
any other box (including a second hit on an already matched lesion) is a false
positive. Lowering the score threshold only adds boxes, so this one greedy pass
gives the matches at every threshold. Sensitivity at F false positives per image is
the best sensitivity over thresholds whose FP count / images <= F. The summary is
the mean over the standard points 1/8, 1/4, 1/2, 1, 2, 4, 8 (the CPM of LUNA16).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from radstream.domain.geometry import box_iou
from radstream.evaluation.inputs import TruthBox

FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def match_image(predictions: list[tuple[float, list[float]]], truth: list[tuple[float, ...]],
                min_iou: float) -> list[tuple[float, bool]]:
    """(score, is_true_positive) for every predicted box of one image and label."""
    matched = [False] * len(truth)
    ranked = sorted(predictions, key=lambda p: -p[0])
    overlaps = box_iou([box for _, box in ranked], truth).tolist()
    out = []
    for (score, _), row in zip(ranked, overlaps):
        best, best_iou = -1, min_iou
        for j, overlap in enumerate(row):
            if not matched[j] and overlap >= best_iou:
                best, best_iou = j, overlap
        if best >= 0:
            matched[best] = True
        out.append((score, best >= 0))
    return out


def froc(results: list[dict], truth_boxes: list[TruthBox], label: str, min_iou: float = 0.5,
         fp_rates: tuple[float, ...] = FP_RATES) -> dict:
    """FROC of one label over every image of the given studies. Images come from the results."""
    truth_by_image: dict[str, list] = defaultdict(list)
    for t in truth_boxes:
        if t.label == label:
            truth_by_image[t.sop_uid].append(t.box)
    n_lesions = sum(len(v) for v in truth_by_image.values())
    scored: list[tuple[float, bool]] = []
    images = set()
    for result in results:
        for img in result["images"]:
            images.add(img["sop_uid"])
            preds = [(b["score"], b["box"]) for b in img.get("fused_boxes") or [] if b["label"] == label]
            scored += match_image(preds, truth_by_image.get(img["sop_uid"], []), min_iou)
    missing_images = sorted(set(truth_by_image) - images)
    n_images = len(images)
    curve = _curve(scored, n_lesions, n_images)
    at = {}
    for rate in fp_rates:
        ok = [s for s, f in zip(curve["sensitivity"], curve["fp_per_image"]) if f <= rate]
        at[f"{rate:g}"] = max(ok) if ok else 0.0
    return {"label": label, "lesions": n_lesions, "images": n_images, "min_iou": min_iou,
            "sensitivity_at_fp_per_image": at, "mean_sensitivity": float(np.mean(list(at.values()))) if at else None,
            "curve": curve, "truth_images_without_result": missing_images}


def _curve(scored: list[tuple[float, bool]], n_lesions: int, n_images: int) -> dict[str, list[float]]:
    if not scored or n_images == 0:
        return {"thresholds": [], "sensitivity": [0.0], "fp_per_image": [0.0]}
    scores = np.array([s for s, _ in scored])
    hits = np.array([h for _, h in scored])
    order = np.argsort(-scores, kind="mergesort")
    scores, hits = scores[order], hits[order]
    last = np.r_[np.flatnonzero(np.diff(scores) != 0), scores.size - 1]
    tp = np.cumsum(hits)[last]
    fp = np.cumsum(~hits)[last]
    return {"thresholds": scores[last].tolist(),
            "sensitivity": [0.0] + (tp / max(n_lesions, 1)).tolist(),
            "fp_per_image": [0.0] + (fp / n_images).tolist()}
