"""Check preprocessing choices on our own data instead of assuming them: train the demo
classifier under each profile variant (CLAHE on/off, LANCZOS against bilinear) on the same
phantoms, evaluate on one held-out set, and report each variant's AUC difference from the
baseline with a paired bootstrap 95% interval over the held-out images.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch

from radstream.models.backends.torch_backend import TorchBackend
from radstream.models.training.demo_data import generate_phantoms, render_sets
from radstream.models.training.evaluation import predict_images
from radstream.models.manifest import ArtifactRef, ModelManifest
from radstream.models.training.metrics import roc_auc
from radstream.models.nets import build_net
from radstream.services.synthetic.phantoms import NODULE
from radstream.models.profile import ClaheSettings, InputProfile
from radstream.models.training.loops import train_classifier

BASELINE = InputProfile(size=256, letterbox=True, interpolation="lanczos", clahe=ClaheSettings(enabled=True))
VARIANTS: dict[str, InputProfile] = {
    "baseline (CLAHE, LANCZOS)": BASELINE,
    "no CLAHE": dataclasses.replace(BASELINE, clahe=ClaheSettings(enabled=False)),
    "bilinear": dataclasses.replace(BASELINE, interpolation="bilinear"),
}


def paired_bootstrap_difference(truth: np.ndarray, a: np.ndarray, b: np.ndarray, resamples: int = 1000,
                                seed: int = 0) -> tuple[float, float, float]:
    """AUC(b) - AUC(a), and its 95% interval from resampling the same images for both."""
    rng = np.random.default_rng(seed)
    diffs = []
    n = len(truth)
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        if truth[idx].all() or not truth[idx].any():
            continue
        diffs.append(roc_auc(b[idx], truth[idx]) - roc_auc(a[idx], truth[idx]))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return roc_auc(b, truth) - roc_auc(a, truth), float(lo), float(hi)


def ablate(n_train: int = 400, n_held_out: int = 200, epochs: int = 6, seed: int = 0, resamples: int = 1000,
           progress: Callable[[str], None] = print) -> dict[str, dict[str, float]]:
    torch.set_num_threads(2)
    names = list(VARIANTS)
    sets = render_sets(np.random.default_rng([seed, 21]), n_train, [VARIANTS[n] for n in names])
    held_out = generate_phantoms(np.random.default_rng([seed, 22]), n_held_out)
    truth = np.array([NODULE in p.labels for p in held_out])
    scores: dict[str, np.ndarray] = {}
    for name, rendered in zip(names, sets):
        profile = VARIANTS[name].with_stats(*rendered.mean_std())
        torch.manual_seed(seed)
        net = build_net("tiny-cnn", 1, profile.channels, {"width": 16})
        progress(f"training the classifier with {name} ...")
        train_classifier(net, rendered.normalised(profile), rendered.tensor_boxes, epochs, lambda m: None, seed=seed)
        manifest = ModelManifest(name="ablation", version="0", task="classifier", family="tiny-cnn", labels=[NODULE],
                                 input_profile=profile, artifact=ArtifactRef("-", "-"), default_thresholds={NODULE: 0.5})
        outputs = predict_images(TorchBackend(manifest, net=net), [p.image for p in held_out])
        scores[name] = np.array([o.classifications[NODULE] for o, _ in outputs])
    base = names[0]
    report = {base: {"auc": roc_auc(scores[base], truth)}}
    for name in names[1:]:
        diff, lo, hi = paired_bootstrap_difference(truth, scores[base], scores[name], resamples, seed)
        report[name] = {"auc": roc_auc(scores[name], truth), "difference": diff, "ci_low": lo, "ci_high": hi}
    return report
