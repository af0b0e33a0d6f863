"""The ablation harness trains real models per variant and reports paired differences."""

from __future__ import annotations

import numpy as np

from radstream.models.training.ablation import VARIANTS, ablate, paired_bootstrap_difference


def test_paired_bootstrap_brackets_a_known_difference() -> None:
    rng = np.random.default_rng(0)
    truth = rng.random(400) < 0.5
    weak = truth + rng.normal(0, 1.5, 400)
    strong = truth + rng.normal(0, 0.5, 400)
    diff, lo, hi = paired_bootstrap_difference(truth, weak, strong, resamples=300)
    assert 0 < lo < diff < hi
    same, lo, hi = paired_bootstrap_difference(truth, weak, weak, resamples=100)
    assert same == 0 and lo == 0 and hi == 0


def test_small_ablation_runs_every_variant() -> None:
    report = ablate(n_train=48, n_held_out=40, epochs=1, resamples=50, progress=lambda m: None)
    assert list(report) == list(VARIANTS)
    for name, row in report.items():
        assert 0 <= row["auc"] <= 1
        if name != next(iter(VARIANTS)):
            assert row["ci_low"] <= row["difference"] <= row["ci_high"]
