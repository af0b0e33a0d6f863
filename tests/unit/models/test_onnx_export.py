"""ONNX export of every model and family: ONNX Runtime matches torch within PARITY_TOLERANCE,
one export serves any batch size, and a family whose backends lack onnx is refused in one line.
Since the motion spectrum's graph became matmuls (D-059) every shipped family exports; the
refusal is checked on a real family with onnx taken out of its backends."""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch

from radstream.models import families
from radstream.models.backends.export import (INPUT_NAME, PARITY_TOLERANCE, NotExportableError, export_checked, export_onnx,
                                     max_difference, parity)
from radstream.models.families import get_family
from radstream.models.manifest import ModelManifest
from radstream.models.profile import InputProfile
from radstream.models.registry import default_registry_dir, load_manifests

FRESH_SIZE = 128  # a multiple of every family's stride (EfficientDet's is 128), small enough to be quick


def _shipped() -> list[ModelManifest]:
    return [m for m in load_manifests(default_registry_dir()).values() if "onnx" in get_family(m.family).backends]


def _default_architecture(module: Any, name: str) -> dict[str, Any]:
    per_family = getattr(module, "DEFAULT_ARCHITECTURES", {})
    return dict(per_family.get(name, getattr(module, "DEFAULT_ARCHITECTURE", {})))


def _present_families() -> list[tuple[str, Any, dict[str, Any]]]:
    """(name, family, default architecture) for every family module in models/families/."""
    found = []
    for info in pkgutil.iter_modules(families.__path__):
        module = importlib.import_module(f"{families.__name__}.{info.name}")
        for name, family in getattr(module, "FAMILIES", {}).items():
            found.append((name, family, _default_architecture(module, name)))
    return found


EXPORTABLE = [f for f in _present_families() if "onnx" in f[1].backends]
NOT_EXPORTABLE = [f for f in _present_families() if "onnx" not in f[1].backends]


def test_every_family_and_every_shipped_model_exports() -> None:
    assert NOT_EXPORTABLE == [], [f[0] for f in NOT_EXPORTABLE]
    assert {f[0] for f in EXPORTABLE} >= {"motion-spectrum", "faster-rcnn", "efficientdet", "tiny-cnn"}
    shipped = set(load_manifests(default_registry_dir()))
    assert {m.name for m in _shipped()} == shipped >= {"demo-motion", "demo-frcnn", "demo-effdet", "demo-qc"}, \
        "every shipped family exports; a missing one means the filter is wrong"


@pytest.fixture
def torch_only(monkeypatch: pytest.MonkeyPatch) -> tuple[str, Any, dict[str, Any]]:
    """The tiny CNN family with onnx taken out of its backends, for as long as the test runs."""
    family = get_family("tiny-cnn")
    monkeypatch.setattr(family, "backends", ("torch",))
    return "tiny-cnn", family, dict(family.default_architecture)


@pytest.mark.parametrize("manifest", _shipped(), ids=lambda m: m.name)
def test_shipped_model_matches_torch_at_batch_1_and_5(manifest: ModelManifest, tmp_path: Path) -> None:
    path = tmp_path / f"{manifest.name}.onnx"
    at_two = export_checked(manifest, path)  # exported once, traced at batch 2
    for diffs in (at_two, parity(manifest, batch=1, onnx_path=path), parity(manifest, batch=5, onnx_path=path)):
        assert max(diffs) <= PARITY_TOLERANCE, diffs


@pytest.mark.parametrize("name,family,architecture", EXPORTABLE, ids=[f[0] for f in EXPORTABLE])
def test_fresh_family_net_matches_torch_at_batch_1_and_5(name: str, family: Any, architecture: dict,
                                                         tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = family.build(2, 1, FRESH_SIZE, architecture).eval()
    source = (family, net, InputProfile(size=FRESH_SIZE))
    path = export_onnx(source, tmp_path / f"{name}.onnx")
    for batch in (1, 5):
        diffs = parity(source, batch=batch, onnx_path=path)
        assert max(diffs) <= PARITY_TOLERANCE, (batch, diffs)


def test_graph_has_named_io_and_a_symbolic_batch_axis(tmp_path: Path) -> None:
    manifest = load_manifests(default_registry_dir(), ["demo-effdet"])["demo-effdet"]
    graph = onnx.load(export_onnx(manifest, tmp_path / "d.onnx")).graph
    assert [i.name for i in graph.input] == [INPUT_NAME]
    assert [o.name for o in graph.output] == ["output0", "output1"]  # scores, boxes: raw_module's order
    for value in [*graph.input, *graph.output]:
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
    size = manifest.input_profile.size
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim[1:]] == [1, size, size]


def test_family_without_onnx_is_refused_in_one_line(torch_only, tmp_path: Path) -> None:
    name, family, architecture = torch_only
    net = family.build(2, 1, FRESH_SIZE, architecture)
    with pytest.raises(NotExportableError, match=f"family {name} does not export to ONNX") as info:
        export_onnx((family, net, InputProfile(size=FRESH_SIZE)), tmp_path / "x.onnx")
    assert "\n" not in str(info.value) and not (tmp_path / "x.onnx").exists()


def test_a_manifest_of_such_a_family_is_refused_before_its_weights_are_read(torch_only, tmp_path: Path) -> None:
    data = load_manifests(default_registry_dir(), ["demo-effdet"])["demo-effdet"].to_dict()
    data.update(family=torch_only[0], artifact={"path": "missing.pt", "sha256": "0" * 64})
    (tmp_path / "frcnn.json").write_text(json.dumps({**data, "name": "frcnn"}))
    manifest = ModelManifest.read(tmp_path / "frcnn.json")
    with pytest.raises(NotExportableError, match="frcnn-1: family .* does not export to ONNX"):
        export_onnx(manifest, tmp_path / "x.onnx")


def test_models_compile_writes_checked_onnx_without_tensorrt(tmp_path: Path, monkeypatch, capsys) -> None:
    """The CLI end to end on a registry whose detector asks for TensorRT and whose qc model does not."""
    from radstream.services.cli import main

    registry = tmp_path / "registry"
    registry.mkdir()
    for name, backends in (("demo-effdet", ["tensorrt", "torch"]), ("demo-qc", ["torch"])):
        data = json.loads((default_registry_dir() / f"{name}.json").read_text())
        artifact = (default_registry_dir() / data["artifact"]["path"]).resolve()
        data.update(backends=backends, artifact={**data["artifact"], "path": str(artifact)})
        (registry / f"{name}.json").write_text(json.dumps(data))
    monkeypatch.setenv("RADSTREAM_MODEL_REGISTRY", str(registry))
    monkeypatch.setenv("RADSTREAM_ENGINE_CACHE", str(tmp_path / "engines"))
    monkeypatch.setenv("RADSTREAM_DEVICE", "cpu")
    monkeypatch.delenv("RADSTREAM_MODELS", raising=False)
    assert main(["models", "compile", "--out", str(tmp_path / "onnx")]) == 0
    out = capsys.readouterr().out
    assert "demo-qc: skipped (manifest backends: torch)" in out
    assert "demo-effdet: parity max |onnx - torch|" in out and ": ok" in out
    written = list((tmp_path / "onnx").glob("*.onnx"))
    assert [p.name.split(".")[0] for p in written] == ["demo-effdet-1"]
    assert main(["models", "compile", "--models", "no-such-model"]) == 2


def test_the_parity_difference_counts_a_nan_and_forgives_meaningless_magnitudes() -> None:
    expected = np.array([[0.25, 0.5, 0.75, 1.0], [-6000.0, 0.8, 6000.0, np.inf], [0.0, 0.0, 1e33, -np.inf]])
    assert max_difference(expected.copy(), expected) == 0.0  # the same infinities agree
    close = expected.copy()
    close[0, 0] += 5e-5  # absolute in a row of values up to 1
    close[1, 1] += 0.3  # a coordinate near 0 beside one of 6000 px: 5e-5 of the box
    close[2, 2] *= 1.001  # both far beyond any meaningful output
    assert 4e-5 < max_difference(close, expected) < 6e-5
    wrong = expected.copy()
    wrong[0, 2] = 0.76
    assert max_difference(wrong, expected) > 5e-3
    nan_late = expected.copy()
    nan_late[2, 1] = np.nan
    assert max_difference(nan_late, expected) == np.inf
    flipped = expected.copy()
    flipped[1, 3] = -np.inf
    assert max_difference(flipped, expected) > 1
    # the control: the plain formula gives NaN for equal infinities, which max() over outputs drops
    with np.errstate(invalid="ignore"):
        plain = [0.5, float(np.max(np.abs(wrong - expected)))]
    assert max(plain) == 0.5
