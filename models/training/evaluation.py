"""Held-out evaluation of a loaded model, through the same path inference uses.

Raw phantom -> apply_profile -> backend.predict -> Letterbox.to_original, then
compared with the phantom's true boxes in original pixels.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from radstream.models.calibration import calibrate
from radstream.models.training.metrics import detection_recall_precision, roc_auc, sensitivity_specificity
from radstream.models.outputs import ModelOutput
from radstream.models.manifest import ModelManifest
from radstream.services.synthetic.phantoms import Phantom
from radstream.models.profile import Letterbox, apply_profile


class Predictor(Protocol):
    manifest: ModelManifest

    def predict(self, batch: np.ndarray) -> list[ModelOutput]: ...


Predicted = list[tuple[ModelOutput, Letterbox]]  # predict_images' output for a list of images


def predict_images(backend: Predictor, images: list[np.ndarray], batch_size: int = 32) -> Predicted:
    """Preprocess with the manifest's profile and predict, keeping each image's geometry."""
    profile = backend.manifest.input_profile
    results: list[tuple[ModelOutput, Letterbox]] = []
    for start in range(0, len(images), batch_size):
        prepared = [apply_profile(image, profile) for image in images[start : start + batch_size]]
        outputs = backend.predict(np.stack([tensor for tensor, _ in prepared]))
        results.extend(zip(outputs, [geometry for _, geometry in prepared]))
    return results


def evaluate_classifier(backend: Predictor, phantoms: list[Phantom], label: str = "nodule") -> dict[str, Any]:
    """AUC, and sensitivity/specificity at the manifest's default threshold."""
    threshold = backend.manifest.default_thresholds[label]
    results = predict_images(backend, [p.image for p in phantoms])
    cal = backend.manifest.calibration
    scores = np.array([calibrate(output.classifications[label], cal) for output, _ in results])
    truth = np.array([label in p.labels for p in phantoms])
    sensitivity, specificity = sensitivity_specificity(scores, truth, threshold)
    return {
        "n_images": len(phantoms),
        "n_positive": int(truth.sum()),
        "auc": round(roc_auc(scores, truth), 4),
        "threshold": threshold,
        "sensitivity": round(sensitivity, 4),
        "specificity": round(specificity, 4),
    }


def calibrated_boxes(results: Predicted, calibration: dict | None, label: str,
                     threshold: float = 0.0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per image: the label's boxes in original pixels and their calibrated scores, those at or
    above `threshold` only, as fuse sees them."""
    out = []
    for output, geometry in results:
        scores = [(d, calibrate(d.score, calibration)) for d in output.detections if d.label == label]
        kept = [(d, s) for d, s in scores if s >= threshold]
        boxes = geometry.to_original(np.array([d.box for d, _ in kept], dtype=np.float32).reshape(-1, 4))
        out.append((boxes.astype(np.float64), np.array([s for _, s in kept], dtype=np.float64)))
    return out


def evaluate_detector(
    backend: Predictor, phantoms: list[Phantom], label: str = "nodule", min_iou: float = 0.3,
    results: Predicted | None = None,
) -> dict[str, Any]:
    """Recall and precision at IoU >= min_iou and the default score threshold, in original pixels.

    `results`: this backend's `predict_images` over these phantoms, when the caller already
    has them (the ensemble evaluation reuses the same pass)."""
    threshold = backend.manifest.default_thresholds[label]
    if results is None:
        results = predict_images(backend, [p.image for p in phantoms])
    # thresholds are on the calibrated scale, as in the pipeline
    predictions = calibrated_boxes(results, backend.manifest.calibration, label, threshold)
    truths = [p.boxes[[l == label for l in p.labels]] for p in phantoms]
    recall, precision = detection_recall_precision(predictions, truths, min_iou)
    image_scores = np.array([output.classifications[label] for output, _ in results])
    return {
        "n_images": len(phantoms),
        "n_lesions": int(sum(len(t) for t in truths)),
        "min_iou": min_iou,
        "threshold": threshold,
        "recall": round(recall, 4),
        "precision": round(precision, 4),
        "image_auc": round(roc_auc(image_scores, np.array([len(t) > 0 for t in truths])), 4),
    }


def evaluate_multilabel(
    backend: Predictor, images: list[np.ndarray], truths: list[frozenset[str]]
) -> dict[str, dict[str, Any]]:
    """Per label: AUC, and sensitivity/specificity at the manifest's default threshold."""
    results = predict_images(backend, images)
    metrics: dict[str, dict[str, Any]] = {}
    for label in backend.manifest.labels:
        threshold = backend.manifest.default_thresholds[label]
        scores = np.array([output.classifications[label] for output, _ in results])
        truth = np.array([label in t for t in truths])
        sensitivity, specificity = sensitivity_specificity(scores, truth, threshold)
        metrics[label] = {
            "n_positive": int(truth.sum()),
            "auc": round(roc_auc(scores, truth), 4),
            "threshold": threshold,
            "sensitivity": round(sensitivity, 4),
            "specificity": round(specificity, 4),
        }
    return metrics
