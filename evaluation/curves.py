"""ROC and precision-recall curves over every distinct score, and the areas under them.

A threshold t calls a study positive when its score >= t, as the rules do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def roc_auc(truth: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney estimate (ties count half); NaN without both classes."""
    truth, scores = np.asarray(truth, dtype=bool), np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _midranks(scores)
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _midranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    _, first, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    mid = first + (counts + 1) / 2.0  # 1-based average rank of each tie group
    ranks = np.empty(values.size)
    ranks[order] = np.repeat(mid, counts)
    return ranks


@dataclass(frozen=True)
class OperatingPoints:
    """Counts at every candidate threshold (descending), one entry per distinct score."""

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    tn: np.ndarray
    fn: np.ndarray


def operating_points(truth: np.ndarray, scores: np.ndarray) -> OperatingPoints:
    truth, scores = np.asarray(truth, dtype=bool), np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    s, t = scores[order], truth[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1] if s.size else np.array([], dtype=int)
    tp = np.cumsum(t)[last_of_group]
    fp = np.cumsum(~t)[last_of_group]
    return OperatingPoints(s[last_of_group], tp, fp, int((~t).sum()) - fp, int(t.sum()) - tp)


def roc_curve(truth: np.ndarray, scores: np.ndarray) -> dict[str, list[float]]:
    """fpr, tpr, threshold lists starting at (0, 0) (threshold +inf)."""
    op = operating_points(truth, scores)
    pos, neg = max(int(np.sum(truth)), 1), max(int(np.size(truth) - np.sum(truth)), 1)
    return {"fpr": [0.0] + (op.fp / neg).tolist(), "tpr": [0.0] + (op.tp / pos).tolist(),
            "thresholds": [float("inf")] + op.thresholds.tolist()}


def pr_curve(truth: np.ndarray, scores: np.ndarray) -> dict[str, list[float]]:
    """recall, precision, threshold lists in descending threshold order."""
    op = operating_points(truth, scores)
    pos = max(int(np.sum(truth)), 1)
    return {"recall": (op.tp / pos).tolist(), "precision": (op.tp / np.maximum(op.tp + op.fp, 1)).tolist(),
            "thresholds": op.thresholds.tolist()}


def average_precision(truth: np.ndarray, scores: np.ndarray) -> float:
    """Step-wise area under the PR curve: sum over thresholds of (recall gain) x precision."""
    op = operating_points(truth, scores)
    pos = int(np.sum(truth))
    if pos == 0:
        return float("nan")
    recall = op.tp / pos
    precision = op.tp / np.maximum(op.tp + op.fp, 1)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def reliability(truth: np.ndarray, scores: np.ndarray, bins: int = 10) -> dict[str, list]:
    """Calibration: per equal-width score bin, mean score, observed positive fraction and count; plus ECE."""
    truth, scores = np.asarray(truth, dtype=float), np.clip(np.asarray(scores, dtype=float), 0.0, 1.0)
    which = np.minimum((scores * bins).astype(int), bins - 1)
    mean_score, observed, count = [], [], []
    for b in range(bins):
        sel = which == b
        count.append(int(sel.sum()))
        mean_score.append(float(scores[sel].mean()) if sel.any() else None)
        observed.append(float(truth[sel].mean()) if sel.any() else None)
    ece = sum(c * abs(m - o) for c, m, o in zip(count, mean_score, observed) if c) / max(truth.size, 1)
    return {"mean_score": mean_score, "observed": observed, "count": count, "ece": float(ece)}
