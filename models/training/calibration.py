"""Fitting a calibration on held-out phantoms: `radstream models calibrate NAME`.

Serving only applies a fitted calibration (models/calibration.py); the fitting, its
phantom pairs and the calibration-error check live here, with the rest of training.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from radstream.models.calibration import EPS, calibrate


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    return float(np.mean(np.logaddexp(0, z) - labels * z))


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """Temperature minimising the negative log-likelihood (golden-section search on log T)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), EPS, 1 - EPS)
    logits = np.log(p / (1 - p))
    y = np.asarray(labels, dtype=np.float64)
    lo, hi = math.log(0.05), math.log(20.0)
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(80):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if _nll(logits, y, math.exp(a)) < _nll(logits, y, math.exp(b)):
            hi = b
        else:
            lo = a
    return math.exp((lo + hi) / 2)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width bins, weighted by bin size."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for i in range(bins):
        mask = (p >= edges[i]) & ((p < edges[i + 1]) if i < bins - 1 else (p <= 1))
        if mask.any():
            total += mask.sum() * abs(y[mask].mean() - p[mask].mean())
    return total / max(1, len(p))


def calibration_pairs(backend: Any, phantoms: list, label: str, min_iou: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """(scores, outcomes) on phantoms: image probabilities for a classifier; for a detector, every
    detection's score with 1 when it matches an unmatched true box (IoU >= min_iou), else 0."""
    from radstream.models.training.evaluation import predict_images
    from radstream.domain.geometry import box_iou

    results = predict_images(backend, [p.image for p in phantoms])
    scores, outcomes = [], []
    for (output, geometry), phantom in zip(results, phantoms):
        truth = phantom.boxes[[lab == label for lab in phantom.labels]]
        if backend.manifest.task != "detector":
            scores.append(output.classifications[label])
            outcomes.append(float(len(truth) > 0))
            continue
        found = sorted((d for d in output.detections if d.label == label), key=lambda d: -d.score)
        taken = np.zeros(len(truth), dtype=bool)
        for det in found:
            box = geometry.to_original(np.array([det.box], dtype=np.float32))
            hit = 0.0
            if len(truth):
                ious = box_iou(box, truth)[0]
                ious[taken] = 0
                best = int(np.argmax(ious))
                if ious[best] >= min_iou:
                    taken[best], hit = True, 1.0
            scores.append(det.score)
            outcomes.append(hit)
    return np.array(scores), np.array(outcomes)


MIN_SAMPLES = 20  # fewer scored samples than this, or one outcome only: no temperature is fitted


def fit_temperature_if_possible(probs: np.ndarray, labels: np.ndarray) -> tuple[float, bool]:
    """(temperature, fitted). A model that scores nothing above its floor, or samples of one
    outcome only, give no evidence for a temperature (the search would run to its bound):
    then (1.0, False), the identity."""
    positives = int(np.sum(labels))
    if len(probs) < MIN_SAMPLES or positives in (0, len(probs)):
        return 1.0, False
    return fit_temperature(probs, labels), True


def calibrate_model(manifest_path: Any, images: int = 200, seed: int = 271828, progress=print) -> dict[str, Any]:
    """Fit a temperature on `images` fresh phantoms, check it on another `images`, write it
    into the manifest (the weights and their sha256 do not change)."""
    from pathlib import Path

    from radstream.models.backends.torch_backend import TorchBackend
    from radstream.models.training.demo_data import generate_phantoms
    from radstream.models.manifest import ModelManifest

    path = Path(manifest_path)
    manifest = ModelManifest.read(path)
    if manifest.task not in ("classifier", "detector"):
        raise ValueError(f"{manifest.key}: calibration on phantoms needs a classifier or detector, not {manifest.task}")
    backend = TorchBackend(manifest)
    rng = np.random.default_rng(seed)
    progress(f"{manifest.key}: generating 2 x {images} held-out phantoms (seed {seed}) ...")
    fit_set, check_set = generate_phantoms(rng, images), generate_phantoms(rng, images)

    def pairs(phantoms: list) -> tuple[np.ndarray, np.ndarray]:
        parts = [calibration_pairs(backend, phantoms, label) for label in manifest.labels]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    scores, outcomes = pairs(fit_set)
    temperature, fittable = fit_temperature_if_possible(scores, outcomes)
    if not fittable:
        progress(f"{manifest.key}: WARNING only {len(scores)} scored samples ({int(np.sum(outcomes))} positive): "
                 "too few to fit a temperature; left at 1.0")
    check_scores, check_outcomes = pairs(check_set)
    calibrated = np.array([calibrate(s, {"method": "temperature", "temperature": temperature}) for s in check_scores])
    # Thresholds are read on the calibrated scale: carry the raw operating points over.
    raw_defaults = (manifest.calibration or {}).get("raw_default_thresholds", dict(manifest.default_thresholds))
    manifest.default_thresholds = {
        label: round(calibrate(t, {"method": "temperature", "temperature": temperature}), 4)
        for label, t in raw_defaults.items()
    }
    manifest.calibration = {
        "method": "temperature",
        "temperature": round(temperature, 4),
        "fitted_on": f"{images} phantoms, seed {seed}; checked on {images} more",
        "samples": int(len(scores)),
        "ece_before": round(expected_calibration_error(check_scores, check_outcomes), 4),
        "ece_after": round(expected_calibration_error(calibrated, check_outcomes), 4),
        "raw_default_thresholds": raw_defaults,
    }
    manifest.write(path)
    progress(f"{manifest.key}: temperature {temperature:.3f}; expected calibration error on the check set "
             f"{manifest.calibration['ece_before']:.4f} -> {manifest.calibration['ece_after']:.4f}")
    return manifest.calibration
