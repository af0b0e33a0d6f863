"""The committed demo models must beat chance clearly on phantoms they never saw.

Training draws from numpy SeedSequence([0, 1]) and evaluates on ([0, 2]); the
seed below is used nowhere else. The bars sit a margin below what the shipped
models achieve (see the `validation` block of each manifest).
"""

import numpy as np
import pytest

from radstream.models.backends.torch_backend import TorchBackend
from radstream.models.demo_data import generate_phantoms
from radstream.models.evaluation import evaluate_classifier, evaluate_detector, predict_images
from radstream.models.phantoms import Phantom
from radstream.models.registry import default_registry_dir, load_manifests

FRESH_SEED = 31_337


@pytest.fixture(scope="module")
def fresh_phantoms() -> list[Phantom]:
    return generate_phantoms(np.random.default_rng(FRESH_SEED), 120)


@pytest.fixture(scope="module")
def backends() -> dict[str, TorchBackend]:
    return {name: TorchBackend(m) for name, m in load_manifests(default_registry_dir()).items()}


def test_classifier_beats_chance(backends: dict[str, TorchBackend], fresh_phantoms: list[Phantom]) -> None:
    metrics = evaluate_classifier(backends["demo-classifier"], fresh_phantoms)
    assert metrics["auc"] >= 0.9, metrics
    assert metrics["sensitivity"] >= 0.7 and metrics["specificity"] >= 0.85, metrics


def test_detector_finds_nodules_at_iou_03(backends: dict[str, TorchBackend], fresh_phantoms: list[Phantom]) -> None:
    metrics = evaluate_detector(backends["demo-detector"], fresh_phantoms)
    assert metrics["n_lesions"] > 50
    assert metrics["recall"] >= 0.65 and metrics["precision"] >= 0.85, metrics


def test_detector_outputs_are_well_formed(backends: dict[str, TorchBackend], fresh_phantoms: list[Phantom]) -> None:
    size = backends["demo-detector"].manifest.input_profile.size
    results = predict_images(backends["demo-detector"], [p.image for p in fresh_phantoms[:16]])
    for output, _ in results:
        assert set(output.classifications) == {"nodule"}
        for detection in output.detections:
            x1, y1, x2, y2 = detection.box
            assert detection.label == "nodule" and 0.05 <= detection.score <= 1.0
            assert x1 < x2 and y1 < y2 and -size * 0.1 < x1 and x2 < size * 1.1
        if output.detections:  # the image score is the global heatmap peak, i.e. the best detection
            assert output.classifications["nodule"] == pytest.approx(max(d.score for d in output.detections))


def test_prediction_is_deterministic(backends: dict[str, TorchBackend], fresh_phantoms: list[Phantom]) -> None:
    images = [p.image for p in fresh_phantoms[:4]]
    first = [o for o, _ in predict_images(backends["demo-classifier"], images)]
    second = [o for o, _ in predict_images(backends["demo-classifier"], images)]
    assert first == second
