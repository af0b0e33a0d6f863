"""Every metric against scikit-learn on random data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from radstream.evaluation.curves import average_precision, pr_curve, roc_auc, roc_curve
from radstream.evaluation.metrics import (
    confusion_counts, metrics_from_counts, predictive_values_at, weighted_sensitivity)


def _random_case(seed: int, n: int = 300):
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < rng.uniform(0.1, 0.6)
    scores = np.round(np.clip(rng.normal(np.where(truth, 0.65, 0.4), 0.2), 0, 1), 2)  # rounding makes ties
    return truth, scores, scores >= rng.uniform(0.3, 0.7)


@pytest.mark.parametrize("seed", range(10))
def test_counts_and_ratios_match_sklearn(seed: int) -> None:
    truth, _, predicted = _random_case(seed)
    counts = confusion_counts(truth, predicted)
    tn, fp, fn, tp = skm.confusion_matrix(truth, predicted, labels=[False, True]).ravel()
    assert counts == {"tp": tp, "fp": fp, "tn": tn, "fn": fn}
    m = metrics_from_counts(**counts)
    assert m["sensitivity"] == pytest.approx(skm.recall_score(truth, predicted))
    assert m["specificity"] == pytest.approx(skm.recall_score(truth, predicted, pos_label=False))
    assert m["ppv"] == pytest.approx(skm.precision_score(truth, predicted))
    assert m["npv"] == pytest.approx(skm.precision_score(truth, predicted, pos_label=False))
    assert m["f1"] == pytest.approx(skm.f1_score(truth, predicted))
    assert m["prevalence"] == pytest.approx(truth.mean())


@pytest.mark.parametrize("seed", range(10))
def test_curves_and_areas_match_sklearn(seed: int) -> None:
    truth, scores, _ = _random_case(seed)
    assert roc_auc(truth, scores) == pytest.approx(skm.roc_auc_score(truth, scores))
    assert average_precision(truth, scores) == pytest.approx(skm.average_precision_score(truth, scores))
    fpr, tpr, thr = skm.roc_curve(truth, scores, drop_intermediate=False)
    ours = roc_curve(truth, scores)
    np.testing.assert_allclose(ours["fpr"], fpr)
    np.testing.assert_allclose(ours["tpr"], tpr)
    np.testing.assert_allclose(ours["thresholds"][1:], thr[1:])
    precision, recall, _ = skm.precision_recall_curve(truth, scores, drop_intermediate=False)
    pr = pr_curve(truth, scores)  # descending thresholds; sklearn ends with the (recall 0, precision 1) point
    np.testing.assert_allclose(pr["precision"], precision[:-1][::-1])
    np.testing.assert_allclose(pr["recall"], recall[:-1][::-1])


def test_undefined_ratios_are_nan_not_zero() -> None:
    m = metrics_from_counts(tp=0, fp=0, tn=5, fn=0)
    assert np.isnan(m["sensitivity"]) and np.isnan(m["ppv"]) and m["specificity"] == 1.0
    assert np.isnan(roc_auc(np.array([False, False]), np.array([0.1, 0.2])))


def test_weighted_sensitivity_is_sklearn_recall_with_sample_weights() -> None:
    truth, _, predicted = _random_case(3)
    weights = np.random.default_rng(3).choice([0.5, 1.0, 3.0], size=truth.size)
    assert weighted_sensitivity(truth, predicted, weights) == pytest.approx(
        skm.recall_score(truth, predicted, sample_weight=weights))
    assert weighted_sensitivity(truth, predicted, np.ones(truth.size)) == pytest.approx(skm.recall_score(truth, predicted))


def test_predictive_values_at_the_study_prevalence_are_the_observed_ones() -> None:
    truth, _, predicted = _random_case(5)
    m = metrics_from_counts(**confusion_counts(truth, predicted))
    ppv, npv = predictive_values_at(m["sensitivity"], m["specificity"], m["prevalence"])
    assert ppv == pytest.approx(m["ppv"]) and npv == pytest.approx(m["npv"])
    low_ppv, high_npv = predictive_values_at(m["sensitivity"], m["specificity"], 0.01)
    assert low_ppv < m["ppv"] and high_npv > m["npv"]
