"""Drift of a site's or a device's inputs and outputs against a reference window: the population
stability index (PSI) and the two-sample Kolmogorov-Smirnov statistic, per feature.

PSI alone is noisy at the sample sizes a monitor sees early (its expected value under no drift
is about (bins - 1) * (1/n + 1/m)), and KS alone flags tiny but consistent shifts at large n. An
alarm therefore needs both: PSI at or above its threshold (0.25, the conventional "significant
shift") and KS at or above the critical value of the two-sample test at alpha 0.001, which
accounts for both window sizes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_PSI_THRESHOLD = 0.25
DEFAULT_BINS = 5
KS_ALPHA = 0.001


def psi(reference: Sequence[float], current: Sequence[float], bins: int = DEFAULT_BINS) -> float:
    """Population stability index over the reference's quantile bins (fewer when it has ties),
    with add-a-half smoothing so an empty bin is finite."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.size == 0 or cur.size == 0:
        return 0.0
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1)
    k = len(edges) + 1
    p = (ref_counts + 0.5) / (ref.size + 0.5 * k)
    q = (cur_counts + 0.5) / (cur.size + 0.5 * k)
    return float(np.sum((q - p) * np.log(q / p)))


def ks_statistic(reference: Sequence[float], current: Sequence[float]) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    ref = np.sort(np.asarray(reference, dtype=np.float64))
    cur = np.sort(np.asarray(current, dtype=np.float64))
    if ref.size == 0 or cur.size == 0:
        return 0.0
    points = np.concatenate([ref, cur])
    gap = np.searchsorted(ref, points, side="right") / ref.size - np.searchsorted(cur, points, side="right") / cur.size
    return float(np.max(np.abs(gap)))


def ks_critical(n: int, m: int, alpha: float = KS_ALPHA) -> float:
    """The two-sample KS statistic above which "same distribution" is rejected at `alpha`
    (asymptotic: c(alpha) * sqrt((n + m) / (n m)), c = sqrt(-ln(alpha / 2) / 2))."""
    if n <= 0 or m <= 0:
        return 1.0
    return math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt((n + m) / (n * m))


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    psi: float
    ks: float
    ks_critical: float
    n_reference: int
    n_current: int
    alarm: bool

    def as_dict(self) -> dict:
        return {"feature": self.feature, "psi": round(self.psi, 4), "ks": round(self.ks, 4),
                "ks_critical": round(self.ks_critical, 4), "n_reference": self.n_reference,
                "n_current": self.n_current, "alarm": self.alarm}


def feature_drift(feature: str, reference: Sequence[float], current: Sequence[float],
                  psi_threshold: float = DEFAULT_PSI_THRESHOLD) -> FeatureDrift:
    """PSI, KS and whether both cross their thresholds."""
    value_psi, value_ks = psi(reference, current), ks_statistic(reference, current)
    critical = ks_critical(len(reference), len(current))
    alarm = bool(len(reference) and len(current) and value_psi >= psi_threshold and value_ks >= critical)
    return FeatureDrift(feature, value_psi, value_ks, critical, len(reference), len(current), alarm)
