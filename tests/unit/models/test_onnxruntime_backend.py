"""The ONNX Runtime backend against torch: the same decoded outputs for every shipped model that
exports (Faster R-CNN included, at its fixed batch of 1), the graph cache keyed and sealed like
the artifact, and the thread setting applied."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from radstream.models import crypto
from radstream.models.backends.export import PARITY_TOLERANCE
from radstream.models.backends.graph_cache import graph_key, graph_path, read_graph
from radstream.models.backends.onnxruntime_backend import OnnxRuntimeBackend
from radstream.models.backends.torch_backend import TorchBackend
from radstream.models.families import get_family
from radstream.models.manifest import ModelManifest
from radstream.models.registry import default_registry_dir, load_manifests
from radstream.services.synthetic.phantoms import make_phantom


def _exportable() -> list[ModelManifest]:
    return [m for m in load_manifests(default_registry_dir()).values() if "onnx" in get_family(m.family).backends
            and "onnx" in m.backends]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("graphs")


def _batch(manifest: ModelManifest, n: int = 3) -> np.ndarray:
    """Phantom radiographs through the model's own profile: what the infer stage is given."""
    from radstream.models.profile import apply_profile

    rng = np.random.default_rng(7)
    images = [make_phantom(rng, 512, n_lesions=2).image for _ in range(n)]
    return np.stack([apply_profile(img, manifest.input_profile)[0] for img in images]).astype(np.float32)


def test_every_shipped_family_that_exports_is_served_by_onnxruntime() -> None:
    names = {m.name for m in _exportable()}
    assert {"demo-classifier", "demo-effdet", "demo-rfdetr", "demo-qc", "demo-frcnn", "demo-motion"} <= names, names


@pytest.mark.parametrize("manifest", _exportable(), ids=lambda m: m.name)
def test_decoded_outputs_match_torch_and_the_cached_graph_serves_the_next_start(manifest: ModelManifest,
                                                                                cache_dir: Path) -> None:
    x = _batch(manifest)
    expected = TorchBackend(manifest).predict(x)
    if manifest.task == "detector":  # boxes to compare, not two empty lists
        assert all(e.detections for e in expected), manifest.name
    first = OnnxRuntimeBackend(manifest, threads=1, cache_dir=cache_dir)
    again = OnnxRuntimeBackend(manifest, threads=1, cache_dir=cache_dir)
    assert (first.cache_hit, again.cache_hit) == (False, True)
    assert first.name == "onnxruntime-cpu" and "graph exported" in first.detail and "graph cached" in again.detail
    for backend in (first, again):
        got = backend.predict(x)
        assert len(got) == len(expected) == len(x)
        for g, e in zip(got, expected):
            assert g.classifications.keys() == e.classifications.keys()
            for label, value in e.classifications.items():
                assert abs(g.classifications[label] - value) <= PARITY_TOLERANCE, (label, g.classifications, value)
            assert [d.label for d in g.detections] == [d.label for d in e.detections]
            for gd, ed in zip(g.detections, e.detections):
                assert abs(gd.score - ed.score) <= PARITY_TOLERANCE
                assert np.allclose(gd.box, ed.box, atol=1e-3), (gd.box, ed.box)  # pixels of a 256 px tensor


def test_a_batch_larger_than_a_fixed_graph_runs_in_chunks(cache_dir: Path) -> None:
    """Faster R-CNN's graph takes one image; batches of 1, 2 and 5 give each image's own result."""
    manifest = load_manifests(default_registry_dir(), ["demo-frcnn"])["demo-frcnn"]
    backend = OnnxRuntimeBackend(manifest, threads=1, cache_dir=cache_dir)
    x = _batch(manifest, 5)
    one_by_one = [backend.predict(x[i:i + 1])[0] for i in range(5)]
    for n in (2, 5):
        together = backend.predict(x[:n])
        assert [o.detections for o in together] == [o.detections for o in one_by_one[:n]]


def test_every_key_component_changes_the_cached_graph(cache_dir: Path) -> None:
    manifest = load_manifests(default_registry_dir(), ["demo-qc"])["demo-qc"]
    base = graph_key(manifest, 17, "1.32.0", "cpu")
    variants = [graph_key(replace(manifest, labels=["a", "b", "c", "d", "e"], default_thresholds={}), 17, "1.32.0", "cpu"),
                replace(base, opset=18), replace(base, ort_version="1.33.0"), replace(base, provider="cuda"),
                replace(base, encrypted=True)]
    assert len({base.filename, *(v.filename for v in variants)}) == 6
    assert manifest.content_hash() in base.filename and base.filename.endswith(".opset17.ort1.32.0.cpu.onnx")
    with pytest.raises(ValueError, match="provider"):
        replace(base, provider="rocm")


@pytest.fixture
def encrypted_qc(tmp_path: Path) -> tuple[ModelManifest, str]:
    """demo-qc with its weights encrypted at rest, beside a manifest that says so."""
    source = load_manifests(default_registry_dir(), ["demo-qc"])["demo-qc"]
    key = crypto.new_key()
    sealed = crypto.encrypt(source.artifact_path().read_bytes(), crypto.parse_key(key), source.name, source.version)
    (tmp_path / "qc.pt.enc").write_bytes(sealed)
    data = json.loads((default_registry_dir() / "demo-qc.json").read_text())
    data["artifact"] = {"path": "qc.pt.enc", "sha256": hashlib.sha256(sealed).hexdigest(), "encrypted": True}
    (tmp_path / "demo-qc.json").write_text(json.dumps(data))
    return ModelManifest.read(tmp_path / "demo-qc.json"), key


def test_an_encrypted_model_leaves_only_a_sealed_graph_and_nothing_in_temp(encrypted_qc, tmp_path: Path,
                                                                           monkeypatch, caplog) -> None:
    manifest, key = encrypted_qc
    monkeypatch.setenv("RADSTREAM_MODEL_KEY", key)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where any temporary file would go
    cache = tmp_path / "cache"
    backend = OnnxRuntimeBackend(manifest, threads=1, cache_dir=cache)
    assert list(scratch.iterdir()) == []
    files = list(cache.iterdir())
    assert [f.name for f in files] == [graph_key(manifest, 17, backend_ort_version(), "cpu").filename]
    stored = files[0].read_bytes()
    assert crypto.is_encrypted(stored) and crypto.binding_of(stored) == ("demo-qc", "1")
    assert b"pytorch" not in stored and b"onnx::" not in stored  # no graph text in the clear
    x = _batch(manifest, 2)
    assert OnnxRuntimeBackend(manifest, threads=1, cache_dir=cache).cache_hit
    # another key: the sealed graph does not open, is a logged miss, and the model is exported again
    monkeypatch.setenv("RADSTREAM_MODEL_KEY", crypto.new_key())
    assert read_graph(cache, manifest, graph_key(manifest, 17, backend_ort_version(), "cpu")) is None
    assert "cached graph" in caplog.text and "unusable" in caplog.text
    monkeypatch.setenv("RADSTREAM_MODEL_KEY", key)
    plain = OnnxRuntimeBackend(load_manifests(default_registry_dir(), ["demo-qc"])["demo-qc"], threads=1)
    assert [o.classifications for o in backend.predict(x)] == [o.classifications for o in plain.predict(x)]


def backend_ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def test_a_plaintext_model_gets_a_plaintext_graph(cache_dir: Path) -> None:
    manifest = load_manifests(default_registry_dir(), ["demo-qc"])["demo-qc"]
    OnnxRuntimeBackend(manifest, threads=1, cache_dir=cache_dir)
    stored = graph_path(cache_dir, graph_key(manifest, 17, backend_ort_version(), "cpu")).read_bytes()
    assert not crypto.is_encrypted(stored)
    import onnx

    assert onnx.load_from_string(stored).graph.input[0].name == "input"


def test_compute_threads_reach_the_session(tmp_path: Path) -> None:
    from radstream.streams.config import Config
    from radstream.streams.stages.registry import build_stage

    shutil.copytree(default_registry_dir(), tmp_path / "registry")
    env = {"RADSTREAM_BLOB_URL": str(tmp_path / "blobs"), "RADSTREAM_DEVICE": "cpu",
           "RADSTREAM_ENGINE_CACHE": str(tmp_path / "engines"), "RADSTREAM_COMPUTE_THREADS": "1"}
    stage = build_stage("infer", Config.from_env(env=env), "demo-qc")
    stage.wait_for_model()  # the background load (D-043), here in the caller's thread
    assert stage.backend.name == "onnxruntime-cpu"
    options = stage.backend.session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
    assert "1 thread," in stage.backend.detail
