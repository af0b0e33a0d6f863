"""`radstream models dataset-stats`: a folder's own mean and std under a model's profile."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from radstream.models.training.dataset_stats import dataset_stats, dicom_images
from radstream.models.profile import InputProfile, prepare_unit_image
from radstream.models.registry import default_registry_dir
from radstream.services.synthetic.studies import write_synthetic_study


def test_statistics_equal_numpy_over_the_profiled_images(tmp_path) -> None:
    write_synthetic_study(tmp_path / "s", n_images=3, seed=5)
    images = dicom_images(tmp_path)
    assert len(images) == 3
    profile = InputProfile(size=64)
    mean, std, pixels = dataset_stats(images, profile)
    units = np.concatenate([prepare_unit_image(i, profile)[0].ravel() for i in images])
    assert pixels == units.size == 3 * 64 * 64
    assert mean == pytest.approx(units.mean(), abs=1e-9) and std == pytest.approx(units.std(), abs=1e-9)


def test_cli_writes_the_statistics_into_a_manifest(tmp_path) -> None:
    write_synthetic_study(tmp_path / "data", n_images=2, seed=6)
    (tmp_path / "data" / "junk.dcm").write_bytes(b"not dicom")
    manifest = tmp_path / "demo-classifier.json"
    shutil.copy(default_registry_dir() / "demo-classifier.json", manifest)
    res = subprocess.run([sys.executable, "-m", "radstream.services.cli", "models", "dataset-stats",
                          str(tmp_path / "data"), "--manifest", str(manifest), "--write"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "skipped junk.dcm" in res.stderr and "2 image(s)" in res.stdout
    written = json.loads(manifest.read_text())["input_profile"]
    before = json.loads((default_registry_dir() / "demo-classifier.json").read_text())["input_profile"]
    assert written["mean"] != before["mean"] and 0 < written["std"] < 1
