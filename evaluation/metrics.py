"""Confusion counts and the metrics derived from them. Undefined ratios are None, never a silent 0."""

from __future__ import annotations

import numpy as np

METRIC_NAMES = ("sensitivity", "specificity", "ppv", "npv", "f1", "prevalence")

# Default weights of a positive's clinical significance tier in the weighted sensitivity.
DEFAULT_TIER_WEIGHTS = {"acute": 3.0, "urgent": 3.0, "critical": 3.0, "chronic": 1.0, "incidental": 0.5}
DEFAULT_TIER_WEIGHT = 1.0  # any other tier, and a positive with no tier


def confusion_counts(truth: np.ndarray, predicted: np.ndarray) -> dict[str, int]:
    truth, predicted = np.asarray(truth, dtype=bool), np.asarray(predicted, dtype=bool)
    return {"tp": int((truth & predicted).sum()), "fp": int((~truth & predicted).sum()),
            "tn": int((~truth & ~predicted).sum()), "fn": int((truth & ~predicted).sum())}


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def metrics_from_counts(tp, fp, tn, fn) -> dict[str, np.ndarray]:
    """Every metric from counts; works elementwise on arrays (one entry per bootstrap resample). NaN = undefined."""
    tp, fp, tn, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, tn, fn))
    return {
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "prevalence": _ratio(tp + fn, tp + fp + tn + fn),
    }


def predictive_values_at(sensitivity, specificity, prevalence: float) -> tuple[np.ndarray, np.ndarray]:
    """PPV and NPV that the same sensitivity and specificity give at another prevalence (Bayes)."""
    sens, spec = np.asarray(sensitivity, dtype=np.float64), np.asarray(specificity, dtype=np.float64)
    p = float(prevalence)
    ppv = _ratio(sens * p, sens * p + (1 - spec) * (1 - p))
    npv = _ratio(spec * (1 - p), spec * (1 - p) + (1 - sens) * p)
    return ppv, npv


def tier_weights(tiers: list[str], weights: dict[str, float]) -> np.ndarray:
    return np.array([weights.get(t.lower(), DEFAULT_TIER_WEIGHT) if t else DEFAULT_TIER_WEIGHT for t in tiers])


def weighted_sensitivity(truth: np.ndarray, predicted: np.ndarray, weights: np.ndarray) -> float:
    """Sum of the weights of the positives found over the sum of the weights of all positives."""
    truth, predicted = np.asarray(truth, dtype=bool), np.asarray(predicted, dtype=bool)
    den = float(weights[truth].sum())
    return float(weights[truth & predicted].sum() / den) if den > 0 else float("nan")


def as_number(value) -> float | None:
    """JSON-friendly: NaN (undefined) becomes None."""
    value = float(value)
    return None if np.isnan(value) else value
