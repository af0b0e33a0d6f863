import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from radstream.models.backends.torch_backend import TorchBackend
from radstream.models.families import get_family
from radstream.models.manifest import ModelLoadError, ModelManifest, verify_artifact
from radstream.models.registry import default_registry_dir, load_manifests

SHIPPED = ["demo-classifier", "demo-effdet", "demo-frcnn", "demo-motion", "demo-qc", "demo-rfdetr"]
ARTIFACTS_BUDGET = 25_000_000  # bytes, all shipped weights together: they live in git


@pytest.fixture()
def registry_copy(tmp_path: Path) -> Path:
    """The shipped registry and artifacts copied with their relative layout intact."""
    source = default_registry_dir().parent
    shutil.copytree(source / "registry", tmp_path / "registry")
    shutil.copytree(source / "artifacts", tmp_path / "artifacts")
    return tmp_path / "registry"


def test_shipped_manifests_load_and_verify() -> None:
    manifests = load_manifests(default_registry_dir())
    assert sorted(manifests) == SHIPPED
    for manifest in manifests.values():
        assert manifest.not_for_clinical_use is True
        if manifest.name == "demo-motion":  # fine detail: a 256 px view, stretched
            assert manifest.task == "qc" and manifest.input_profile.size == 256
            assert not manifest.input_profile.letterbox
            assert set(manifest.default_thresholds) == set(manifest.labels) == {"motion"}
        elif manifest.task == "qc":  # global acquisition defects, judged on a 128 px view
            assert manifest.input_profile.size == 128
            qc_labels = {"underexposed", "overexposed", "rotated", "cropped"}
            assert set(manifest.default_thresholds) == set(manifest.labels) >= qc_labels
        else:
            assert manifest.input_profile.size == 256
            assert set(manifest.default_thresholds) == set(manifest.labels) == {"nodule"}
        assert manifest.validation, "training must record held-out metrics"
    assert sum(verify_artifact(m).stat().st_size for m in manifests.values()) < ARTIFACTS_BUDGET


def test_shipped_manifests_record_their_whole_architecture() -> None:
    """Every setting the family would otherwise default, so that changing a default later
    cannot rebuild a shipped model differently from how its weights were trained."""
    for manifest in load_manifests(default_registry_dir()).values():
        defaults = get_family(manifest.family).default_architecture
        missing = set(defaults) - set(manifest.architecture)
        assert not missing, f"{manifest.name} does not record {sorted(missing)}"


def test_load_selected_names_only() -> None:
    assert list(load_manifests(default_registry_dir(), ["demo-effdet"])) == ["demo-effdet"]


def test_round_trip_preserves_everything(tmp_path: Path) -> None:
    original = load_manifests(default_registry_dir(), ["demo-classifier"])["demo-classifier"]
    original.write(tmp_path / "demo-classifier.json")
    reread = ModelManifest.read(tmp_path / "demo-classifier.json")
    assert reread == original
    assert reread.input_profile.hash() == original.input_profile.hash()
    assert reread.manifest_dir == tmp_path.resolve()


def test_missing_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found.*nope.json"):
        load_manifests(tmp_path, ["nope"])
    with pytest.raises(ModelLoadError, match="registry folder not found"):
        load_manifests(tmp_path / "absent")


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        ('{"name": "x"}', "invalid"),
    ],
)
def test_invalid_manifest_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "x.json").write_text(text)
    with pytest.raises(ModelLoadError, match=message) as info:
        load_manifests(tmp_path)
    assert "\n" not in str(info.value)


def test_wrong_task_and_edited_profile_are_rejected(registry_copy: Path) -> None:
    path = registry_copy / "demo-effdet.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "task": "segmenter"}))
    with pytest.raises(ModelLoadError, match="task"):
        load_manifests(registry_copy, ["demo-effdet"])
    data["input_profile"]["mean"] = 0.0  # silently changing preprocessing must not pass
    path.write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="input_profile_hash"):
        load_manifests(registry_copy, ["demo-effdet"])


def test_tampered_artifact_is_rejected(registry_copy: Path) -> None:
    manifest = load_manifests(registry_copy, ["demo-effdet"])["demo-effdet"]
    artifact = manifest.artifact_path()
    assert artifact.is_relative_to(registry_copy.parent)
    TorchBackend(manifest)  # the untouched copy loads
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="sha256 mismatch"):
        TorchBackend(manifest)


def test_missing_artifact_is_rejected(registry_copy: Path) -> None:
    manifest = load_manifests(registry_copy, ["demo-classifier"])["demo-classifier"]
    manifest.artifact_path().unlink()
    with pytest.raises(ModelLoadError, match="artifact not found"):
        TorchBackend(manifest)


def test_backend_rejects_a_batch_of_the_wrong_shape() -> None:
    manifest = load_manifests(default_registry_dir(), ["demo-classifier"])["demo-classifier"]
    with pytest.raises(ValueError, match="expected batch"):
        TorchBackend(manifest).predict(np.zeros((1, 1, 128, 128), dtype=np.float32))
