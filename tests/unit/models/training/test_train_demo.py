"""The training path end to end, shrunk to seconds: the shipped run is the same code with more data."""

from pathlib import Path

from radstream.models.backends.torch_backend import TorchBackend
from radstream.models.families import get_family
from radstream.models.registry import load_manifests
from radstream.models.training.save import APPLICABILITY
from radstream.models.training.train_demo import DEMO_MODELS, build_demo

TINY = {"n_train": 12, "n_held_out": 12, "epochs": 1}


def test_build_demo_writes_loadable_models_deterministically(tmp_path: Path) -> None:
    lines: list[str] = []
    registry = tmp_path / "a" / "registry"
    built = build_demo(registry, seed=3, progress=lines.append, **TINY)
    assert [m.name for m in built] == [spec.name for spec in DEMO_MODELS]
    for spec in DEMO_MODELS:  # each model announces itself, then reports its epoch
        start = next(i for i, line in enumerate(lines) if line.startswith(f"training {spec.name} ({spec.family}, "))
        assert " epoch 1/1 loss " in lines[start + 1], lines[start:start + 2]

    manifests = load_manifests(registry)
    classifier = manifests["demo-classifier"]
    assert classifier.artifact.path == f"../artifacts/demo-classifier-{classifier.version}.pt"
    assert {"auc", "sensitivity", "specificity", "train_seconds"} <= set(classifier.validation)
    for spec in DEMO_MODELS:
        manifest = manifests[spec.name]
        assert manifest.family == spec.family and manifest.applicability == APPLICABILITY
        # the whole architecture is recorded: the family's defaults, then the model's overrides
        assert manifest.architecture == {**get_family(spec.family).default_architecture, **spec.architecture}
        if spec.task == "detector":
            assert {"recall", "precision", "image_auc"} <= set(manifest.validation)
            assert not manifest.input_profile.clahe.enabled
        TorchBackend(manifest)  # what was written loads back through the artifact path
    # normalisation stats are the training set's own, not ImageNet's
    assert 0.05 < classifier.input_profile.mean < 0.95 and classifier.input_profile.std < 0.5
    assert classifier.input_profile.clahe.enabled

    subset = DEMO_MODELS[:2]
    again = build_demo(tmp_path / "b" / "registry", seed=3, progress=lambda _: None, models=subset, **TINY)
    assert [m.artifact.sha256 for m in again] == [m.artifact.sha256 for m in built[:2]]


def test_build_demo_only_with_an_unknown_name_is_a_one_line_usage_error(tmp_path: Path, capsys) -> None:
    from radstream.services.cli import main

    assert main(["models", "build-demo", "--registry", str(tmp_path), "--only", "demo-qc,no-such-model"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["radstream: error: not a demo model: no-such-model (earlier versions: demo-classifier@1)"]
    assert not list(tmp_path.iterdir())  # nothing was trained or written
