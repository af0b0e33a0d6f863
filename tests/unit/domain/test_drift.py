"""PSI and KS against hand computations and scipy's two-sample KS test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import ks_2samp

from radstream.domain.drift import feature_drift, ks_critical, ks_statistic, psi


@pytest.mark.parametrize("seed", range(5))
def test_ks_statistic_equals_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 1, 40), rng.normal(0.4, 1.2, 55)
    b[:5] = a[:5]  # ties across the samples
    assert ks_statistic(a, b) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)


def test_psi_by_hand_on_two_bins() -> None:
    # reference 0,0,1,1: its 20/40/60/80 % quantiles (linear) are 0, 0.2, 0.8, 1, so five bins
    # [.., 0), [0, 0.2), [0.2, 0.8), [0.8, 1), [1, ..): counts 0,2,0,0,2; current 1,1,1,1: 0,0,0,0,4.
    # Add a half to each bin: n + 0.5 * 5 = 6.5.
    reference, current = [0, 0, 1, 1], [1, 1, 1, 1]
    p = np.array([0.5, 2.5, 0.5, 0.5, 2.5]) / 6.5
    q = np.array([0.5, 0.5, 0.5, 0.5, 4.5]) / 6.5
    assert psi(reference, current) == pytest.approx(float(np.sum((q - p) * np.log(q / p))))
    assert psi(reference, reference) == pytest.approx(0.0)


def test_ks_critical_is_the_asymptotic_formula_and_an_alarm_needs_both() -> None:
    assert ks_critical(100, 100) == pytest.approx(math.sqrt(-math.log(0.0005) / 2) * math.sqrt(0.02))
    rng = np.random.default_rng(1)
    same = feature_drift("x", rng.normal(0, 1, 300), rng.normal(0, 1, 300))
    moved = feature_drift("x", rng.normal(0, 1, 300), rng.normal(1.5, 1, 300))
    assert not same.alarm and same.psi < 0.25
    assert moved.alarm and moved.psi >= 0.25 and moved.ks >= moved.ks_critical
    small = feature_drift("x", [0.0, 0.1, 0.2], [5.0, 5.1, 5.2])  # KS = 1, yet 3 vs 3 cannot reject at 0.001
    assert small.ks == 1.0 and not small.alarm
