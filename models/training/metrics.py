"""Held-out metrics for the demo models: ROC AUC and IoU-matched recall/precision."""

from __future__ import annotations

import numpy as np

from radstream.domain.geometry import box_iou


def roc_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic (ties count half)."""
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth, dtype=bool)
    pos, neg = scores[truth], scores[~truth]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("AUC needs both positive and negative examples")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def sensitivity_specificity(scores: np.ndarray, truth: np.ndarray, threshold: float) -> tuple[float, float]:
    predicted = np.asarray(scores) >= threshold
    truth = np.asarray(truth, dtype=bool)
    sensitivity = float((predicted & truth).sum() / max(1, truth.sum()))
    specificity = float((~predicted & ~truth).sum() / max(1, (~truth).sum()))
    return sensitivity, specificity


def count_matches(pred_boxes: np.ndarray, pred_scores: np.ndarray, truth_boxes: np.ndarray, min_iou: float) -> int:
    """Greedy one-to-one matching, highest score first; returns the true positives."""
    pred_boxes = np.asarray(pred_boxes).reshape(-1, 4)
    truth_boxes = np.asarray(truth_boxes).reshape(-1, 4)
    if len(pred_boxes) == 0 or len(truth_boxes) == 0:
        return 0
    ious = box_iou(pred_boxes[np.argsort(-np.asarray(pred_scores))], truth_boxes)
    taken = np.zeros(len(truth_boxes), dtype=bool)
    matches = 0
    for row in ious:
        candidates = np.where(~taken & (row >= min_iou))[0]
        if len(candidates):
            taken[candidates[np.argmax(row[candidates])]] = True
            matches += 1
    return matches


def detection_recall_precision(
    predictions: list[tuple[np.ndarray, np.ndarray]], truths: list[np.ndarray], min_iou: float
) -> tuple[float, float]:
    """Recall and precision over a data set of (boxes, scores) predictions per image."""
    tp = sum(count_matches(b, s, t, min_iou) for (b, s), t in zip(predictions, truths))
    n_pred = sum(len(np.asarray(b).reshape(-1, 4)) for b, _ in predictions)
    n_true = sum(len(np.asarray(t).reshape(-1, 4)) for t in truths)
    recall = tp / n_true if n_true else 1.0
    precision = tp / n_pred if n_pred else 1.0
    return float(recall), float(precision)
