"""Agreement between two versions of one model on the same images (pure; `radstream models
compare` reads the results off inference.results and inference.shadow, services/model_compare.py).

Per label: the Pearson correlation of the scores (a classifier's probability; a detector's best
box score on the image, 0 without a box), and the flips at the live version's threshold (live
positive -> shadow negative, and the reverse). For detectors, the box-level F1 of the shadow's
boxes against the live version's as reference: greedy matching by score, same label, IoU at or
above `iou`, boxes under the threshold left out on both sides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from radstream.domain.geometry import iou as box_iou


@dataclass(frozen=True)
class LabelAgreement:
    label: str
    threshold: float
    images: int
    pearson: float | None  # None: fewer than two images, or a constant score on one side
    live_positive_shadow_negative: int
    live_negative_shadow_positive: int


@dataclass(frozen=True)
class BoxAgreement:
    iou: float
    true_positives: int  # shadow boxes matched to a live box
    false_positives: int  # shadow boxes with no live match
    false_negatives: int  # live boxes the shadow missed

    @property
    def f1(self) -> float | None:
        judged = 2 * self.true_positives + self.false_positives + self.false_negatives
        return 2 * self.true_positives / judged if judged else None


@dataclass(frozen=True)
class Agreement:
    model: str
    live_versions: list[str]
    shadow_versions: list[str]
    matched: int
    only_live: int
    only_shadow: int
    labels: list[LabelAgreement] = field(default_factory=list)
    boxes: BoxAgreement | None = None  # detectors only

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.boxes is not None:
            out["boxes"]["f1"] = self.boxes.f1
        return out


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """The sample correlation; None when it is undefined (n < 2, or no variance on a side)."""
    n = len(xs)
    if n < 2 or n != len(ys):
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx <= 0 or syy <= 0:
        return None
    r = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / math.sqrt(sxx * syy)
    return max(-1.0, min(1.0, r))


def label_scores(result: Mapping[str, Any], labels: Sequence[str]) -> dict[str, float]:
    """One score per label of an InferenceResult: the classification, else the best box (0: none)."""
    scores = {label: 0.0 for label in labels}
    for label, p in result.get("classifications", {}).items():
        scores[label] = float(p)
    for d in result.get("detections", []):
        scores[d["label"]] = max(scores.get(d["label"], 0.0), float(d["score"]))
    return scores


def match_boxes(reference: Sequence[Mapping[str, Any]], candidate: Sequence[Mapping[str, Any]],
                iou_thr: float) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of `candidate`'s boxes against
    `reference`'s: each candidate box, best score first, takes the unmatched reference box of its
    label with the highest IoU at or above `iou_thr`."""
    free = list(range(len(reference)))
    tp = 0
    for box in sorted(candidate, key=lambda d: -float(d["score"])):
        best, best_iou = None, iou_thr
        for j in free:
            if reference[j]["label"] != box["label"]:
                continue
            overlap = box_iou(reference[j]["box"], box["box"])
            if overlap >= best_iou:
                best, best_iou = j, overlap
        if best is not None:
            free.remove(best)
            tp += 1
    return tp, len(candidate) - tp, len(free)


def compare_versions(model: str, live: Mapping[str, Mapping[str, Any]], shadow: Mapping[str, Mapping[str, Any]],
                     labels: Sequence[str], thresholds: Mapping[str, float], detector: bool,
                     iou_thr: float = 0.5) -> Agreement:
    """`live`, `shadow`: image key -> that version's InferenceResult for the image (the latest)."""
    both = sorted(set(live) & set(shadow))
    per_label = []
    for label in labels:
        threshold = float(thresholds.get(label, 0.5))
        xs = [label_scores(live[k], labels)[label] for k in both]
        ys = [label_scores(shadow[k], labels)[label] for k in both]
        per_label.append(LabelAgreement(
            label, threshold, len(both), pearson(xs, ys),
            sum(1 for x, y in zip(xs, ys) if x >= threshold > y),
            sum(1 for x, y in zip(xs, ys) if y >= threshold > x)))
    boxes = None
    if detector:
        def kept(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
            return [d for d in result.get("detections", []) if float(d["score"]) >= thresholds.get(d["label"], 0.5)]

        tp = fp = fn = 0
        for k in both:
            t, f, m = match_boxes(kept(live[k]), kept(shadow[k]), iou_thr)
            tp, fp, fn = tp + t, fp + f, fn + m
        boxes = BoxAgreement(iou_thr, tp, fp, fn)
    return Agreement(
        model,
        sorted({r["model"]["version"] for r in live.values()}),
        sorted({r["model"]["version"] for r in shadow.values()}),
        len(both), len(set(live) - set(shadow)), len(set(shadow) - set(live)), per_label, boxes)
