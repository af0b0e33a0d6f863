"""Percentile bootstrap intervals that resample studies (the unit of independence), seeded.

Each resample draws n studies with replacement from the n studies of one label and
recomputes every metric from the resampled studies; the interval is the 2.5th and
97.5th percentile over resamples where the metric is defined.
"""

from __future__ import annotations

import numpy as np

from radstream.evaluation.curves import roc_auc
from radstream.evaluation.metrics import metrics_from_counts, predictive_values_at

DEFAULT_RESAMPLES = 2000
_CHUNK_CELLS = 4_000_000  # resamples x studies drawn at once, to bound memory


def resample_indices(n: int, n_resamples: int, seed: int):
    """Yield (chunk, n) arrays of study indices; the same seed gives the same resamples."""
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _CHUNK_CELLS // max(n, 1))
    done = 0
    while done < n_resamples:
        k = min(per_chunk, n_resamples - done)
        yield rng.integers(0, n, size=(k, n))
        done += k


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> list[float | None]:
    samples = np.asarray(samples, dtype=np.float64)
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return [None, None]
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(samples, [tail, 100 - tail])
    return [float(lo), float(hi)]


def bootstrap_intervals(truth: np.ndarray, predicted: np.ndarray, *, scores: np.ndarray | None = None,
                        weights: np.ndarray | None = None, deployment_prevalence: float | None = None,
                        n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                        level: float = 0.95) -> dict[str, list[float | None]]:
    """`<metric>_ci: [lo, hi]` for every count metric, plus roc_auc, weighted sensitivity and
    deployment PPV/NPV when their inputs are given."""
    truth, predicted = np.asarray(truth, dtype=bool), np.asarray(predicted, dtype=bool)
    n = truth.size
    if n == 0 or n_resamples <= 0:
        return {}
    cells = {"tp": truth & predicted, "fp": ~truth & predicted, "tn": ~truth & ~predicted, "fn": truth & ~predicted}
    collected: dict[str, list[np.ndarray]] = {}

    def keep(name: str, values: np.ndarray) -> None:
        collected.setdefault(name, []).append(values)

    for idx in resample_indices(n, n_resamples, seed):
        counts = {k: v[idx].sum(axis=1) for k, v in cells.items()}
        sample = metrics_from_counts(**counts)
        for name, values in sample.items():
            keep(name, values)
        if weights is not None:
            w = weights[idx]
            pos = truth[idx]
            den = np.where(pos, w, 0.0).sum(axis=1)
            num = np.where(pos & predicted[idx], w, 0.0).sum(axis=1)
            keep("weighted_sensitivity", np.divide(num, den, out=np.full(den.shape, np.nan), where=den > 0))
        if deployment_prevalence is not None:
            ppv, npv = predictive_values_at(sample["sensitivity"], sample["specificity"], deployment_prevalence)
            keep("deployment_ppv", ppv)
            keep("deployment_npv", npv)
        if scores is not None:
            keep("roc_auc", np.array([roc_auc(truth[row], scores[row]) for row in idx]))
    return {f"{name}_ci": percentile_interval(np.concatenate(parts), level) for name, parts in collected.items()}
