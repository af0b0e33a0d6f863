"""The training path end to end, shrunk to seconds: the shipped run is the same code with more data."""

from pathlib import Path

from radstream.models.backends.torch_backend import TorchBackend
from radstream.models.registry import load_manifests
from radstream.models.train_demo import build_demo

TINY = {"n_train": 12, "n_held_out": 12, "epochs": (1, 1)}


def test_build_demo_writes_loadable_models_deterministically(tmp_path: Path) -> None:
    lines: list[str] = []
    registry = tmp_path / "a" / "registry"
    built = build_demo(registry, seed=3, progress=lines.append, **TINY)
    assert [m.name for m in built] == ["demo-classifier", "demo-detector"]
    assert any("classifier epoch 1/1 loss" in line for line in lines)
    assert any("detector epoch 1/1 loss" in line for line in lines)

    manifests = load_manifests(registry)
    classifier, detector = manifests["demo-classifier"], manifests["demo-detector"]
    assert classifier.artifact.path == "../artifacts/demo-classifier-1.pt"
    assert {"auc", "sensitivity", "specificity", "train_seconds"} <= set(classifier.validation)
    assert {"recall", "precision"} <= set(detector.validation)
    # normalisation stats are the training set's own, not ImageNet's
    assert 0.05 < classifier.input_profile.mean < 0.95 and classifier.input_profile.std < 0.5
    assert classifier.input_profile.clahe.enabled and not detector.input_profile.clahe.enabled
    TorchBackend(detector)

    again = build_demo(tmp_path / "b" / "registry", seed=3, progress=lambda _: None, **TINY)
    assert [m.artifact.sha256 for m in again] == [m.artifact.sha256 for m in built]
