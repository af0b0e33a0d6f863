"""The shipped pixel-QC model: beats chance clearly per label on defects it never saw, and
passes the real chest radiographs (RG1), which the end-to-end test expects to be analysed.

Training draws from SeedSequence([0, 11]) and evaluates on ([0, 12]); the seed below is
used nowhere else. The bars sit a margin below the manifest's `validation` block.
"""

from pathlib import Path

import numpy as np
import pytest

from radstream.models.backends.torch_backend import TorchBackend
from radstream.models.training.evaluation import evaluate_multilabel, predict_images
from radstream.models.training.qc_defects import QC_LABELS
from radstream.models.registry import default_registry_dir, load_manifests
from radstream.models.training.train_qc import build_qc_demo, generate_qc_samples
from radstream.services.demo import real_radiographs
from radstream.domain.dicom.decode import decode_instance

FRESH_SEED = 4_242

# Per label (AUC, sensitivity, specificity) at the default thresholds, a margin below what the
# shipped model scores on this seed (see the manifest's validation block for the held-out set).
# (No motion label: the 128 px CNN could not learn it; demo-motion flags it, test_motion_model.py.)
BARS = {
    "underexposed": (0.95, 0.85, 0.95),
    "overexposed": (0.95, 0.85, 0.95),
    "rotated": (0.95, 0.85, 0.95),
    "cropped": (0.90, 0.70, 0.95),
}
# RG1 must stay this far below each default threshold, not merely under it.
REAL_FILM_MARGIN = 0.2


@pytest.fixture(scope="module")
def backend() -> TorchBackend:
    return TorchBackend(load_manifests(default_registry_dir(), ["demo-qc"])["demo-qc"])


def test_each_label_meets_its_bar_on_fresh_defects(backend: TorchBackend) -> None:
    samples = generate_qc_samples(np.random.default_rng(FRESH_SEED), 160)
    metrics = evaluate_multilabel(backend, [s.image for s in samples], [s.labels for s in samples])
    assert set(metrics) == set(QC_LABELS) == set(BARS)
    for label, m in metrics.items():
        auc, sensitivity, specificity = BARS[label]
        assert m["n_positive"] >= 20, (label, m)
        assert m["auc"] >= auc and m["sensitivity"] >= sensitivity and m["specificity"] >= specificity, (label, m)


def test_real_chest_radiographs_are_not_flagged(backend: TorchBackend) -> None:
    paths = [p for p in real_radiographs() if p.name.startswith("RG1_")]
    frames = [decode_instance(p.read_bytes()).frames[0] for p in paths]
    thresholds = backend.manifest.default_thresholds
    for path, (output, _) in zip(paths, predict_images(backend, frames)):
        assert set(output.classifications) == set(QC_LABELS)
        for label in QC_LABELS:
            assert output.classifications[label] < thresholds[label] - REAL_FILM_MARGIN, (path.name, label, output.classifications)


def test_build_qc_demo_is_deterministic_and_records_its_metrics(tmp_path: Path) -> None:
    tiny = {"n_train": 16, "n_held_out": 40, "epochs": 1}
    lines: list[str] = []
    built = build_qc_demo(tmp_path / "a" / "registry", seed=5, progress=lines.append, **tiny)
    assert built.task == "qc" and built.labels == list(QC_LABELS)
    assert any("qc epoch 1/1 loss" in line for line in lines)
    assert set(built.validation["labels"]) == set(QC_LABELS)
    for label in QC_LABELS:
        assert {"auc", "sensitivity", "specificity"} <= set(built.validation["labels"][label])
    assert built.validation["thresholds"]
    assert not built.input_profile.clahe.enabled
    TorchBackend(load_manifests(tmp_path / "a" / "registry")["demo-qc"])
    again = build_qc_demo(tmp_path / "b" / "registry", seed=5, progress=lambda _: None, **tiny)
    assert again.artifact.sha256 == built.artifact.sha256
