"""Study-resampling percentile intervals: seeded, and covering the truth at about the nominal rate."""

from __future__ import annotations

import numpy as np

from radstream.evaluation.bootstrap import bootstrap_intervals


def _simulate(rng: np.random.Generator, n: int, prevalence: float, sensitivity: float, specificity: float):
    truth = rng.random(n) < prevalence
    predicted = np.where(truth, rng.random(n) < sensitivity, rng.random(n) >= specificity)
    return truth, predicted


def test_intervals_cover_the_true_values_at_about_95_percent() -> None:
    rng = np.random.default_rng(2024)
    true = {"sensitivity": 0.8, "specificity": 0.9, "prevalence": 0.4}
    hits = {name: 0 for name in true}
    trials = 200
    for trial in range(trials):
        truth, predicted = _simulate(rng, 250, true["prevalence"], true["sensitivity"], true["specificity"])
        ci = bootstrap_intervals(truth, predicted, n_resamples=400, seed=trial)
        for name, value in true.items():
            lo, hi = ci[f"{name}_ci"]
            hits[name] += lo <= value <= hi
    for name, count in hits.items():
        assert 0.90 <= count / trials <= 0.99, (name, count / trials)


def test_same_seed_same_interval_and_the_point_estimate_lies_inside() -> None:
    rng = np.random.default_rng(1)
    truth, predicted = _simulate(rng, 120, 0.3, 0.85, 0.9)
    scores = np.where(predicted, 0.7, 0.3) + rng.normal(0, 0.1, truth.size)
    a = bootstrap_intervals(truth, predicted, scores=scores, weights=np.ones(truth.size),
                            deployment_prevalence=0.05, n_resamples=300, seed=3)
    b = bootstrap_intervals(truth, predicted, scores=scores, weights=np.ones(truth.size),
                            deployment_prevalence=0.05, n_resamples=300, seed=3)
    assert a == b
    assert {"roc_auc_ci", "weighted_sensitivity_ci", "deployment_ppv_ci", "deployment_npv_ci"} <= set(a)
    sens = (truth & predicted).sum() / truth.sum()
    assert a["sensitivity_ci"][0] <= sens <= a["sensitivity_ci"][1]
    assert a["weighted_sensitivity_ci"] == a["sensitivity_ci"]  # uniform weights: the same statistic
    assert bootstrap_intervals(truth, predicted, n_resamples=300, seed=4) != bootstrap_intervals(
        truth, predicted, n_resamples=300, seed=3)


def test_metric_undefined_in_every_resample_has_no_interval() -> None:
    truth = np.zeros(20, dtype=bool)
    ci = bootstrap_intervals(truth, truth.copy(), n_resamples=50, seed=0)
    assert ci["sensitivity_ci"] == [None, None]
    assert ci["specificity_ci"] == [1.0, 1.0]
