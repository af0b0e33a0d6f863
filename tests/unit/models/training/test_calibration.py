"""Temperature calibration: recovers a known temperature, reduces calibration error, and
the fuse stage applies it before fusion and rules (raw values kept beside)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radstream.models.calibration import calibrate
from radstream.models.training.calibration import (
    expected_calibration_error,
    fit_temperature,
    fit_temperature_if_possible,
)
from radstream.models.registry import default_registry_dir, load_manifests


def test_fit_recovers_the_temperature_that_made_the_scores_overconfident() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, 20000)
    labels = (rng.random(20000) < 1 / (1 + np.exp(-true_logits))).astype(float)
    overconfident = 1 / (1 + np.exp(-true_logits * 3.0))  # a model with temperature 1/3
    t = fit_temperature(overconfident, labels)
    assert t == pytest.approx(3.0, rel=0.05)
    fixed = np.array([calibrate(p, {"method": "temperature", "temperature": t}) for p in overconfident])
    assert expected_calibration_error(fixed, labels) < expected_calibration_error(overconfident, labels) / 3


def test_no_temperature_is_fitted_without_evidence() -> None:
    # a detector that scores nothing, or scores of one outcome only: the identity, flagged
    assert fit_temperature_if_possible(np.array([]), np.array([])) == (1.0, False)
    assert fit_temperature_if_possible(np.full(50, 0.2), np.zeros(50)) == (1.0, False)
    assert fit_temperature_if_possible(np.full(50, 0.9), np.ones(50)) == (1.0, False)
    rng = np.random.default_rng(1)
    probs = rng.random(200)
    t, fitted = fit_temperature_if_possible(probs, (rng.random(200) < probs).astype(float))
    assert fitted and 0.5 < t < 2.0


def test_identity_isotonic_and_unknown_methods() -> None:
    assert calibrate(0.37, None) == 0.37 and calibrate(0.37, {}) == 0.37
    assert calibrate(0.5, {"method": "temperature", "temperature": 0.3}) == pytest.approx(0.5)
    assert calibrate(0.25, {"method": "isotonic", "x": [0, 0.5, 1], "y": [0, 0.2, 1]}) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="unknown calibration"):
        calibrate(0.5, {"method": "platt"})


def test_shipped_manifests_carry_a_fitted_calibration_with_lower_error() -> None:
    for m in load_manifests(default_registry_dir(), ["demo-classifier", "demo-frcnn", "demo-effdet", "demo-rfdetr"]).values():
        cal = m.calibration
        assert cal["method"] == "temperature" and cal["ece_after"] < cal["ece_before"]
        # the operating points moved to the calibrated scale with the scores
        for label, raw in cal["raw_default_thresholds"].items():
            assert m.default_thresholds[label] == pytest.approx(calibrate(raw, cal), abs=1e-4)
    assert math.isfinite(cal["temperature"])
