"""The infer stage around a real model: batching, boxes back in original pixels, and the
out-of-memory guard (halve and retry, never drop)."""

from __future__ import annotations

import numpy as np
import pytest

from radstream.models.backends.torch_backend import TorchBackend
from radstream.models.profile import apply_profile
from radstream.models.registry import default_registry_dir, load_manifests
from radstream.streams.blobstore import FileBlobStore
from radstream.domain.errors import TransientError
from radstream.streams.stage import Inbound
from radstream.streams.stages.infer import InferStage
from tests.factories import metadata


def _event(store: FileBlobStore, manifest, sop: str, rng: np.random.Generator) -> Inbound:
    tensor, box = apply_profile(rng.normal(1000, 200, (300, 400)).astype(np.float32), manifest.input_profile)
    entry = {"profile": manifest.input_profile.hash(), "tensor": store.put_array(tensor), "scale_x": box.scale_x,
             "scale_y": box.scale_y, "pad_x": box.pad_x, "pad_y": box.pad_y, "orig_width": box.original_width,
             "orig_height": box.original_height}
    return Inbound({"idempotency_key": sop, "study_uid": "1.2", "series_uid": "1.2.3", "sop_uid": sop, "frame": 0,
                    "site": "T", "priority": "routine", "expected_instances": 1, "arrived_at": 1, "config_version": 0,
                    "trace_id": None,
                    "display": None, "source": None, "image_stats": None, "metadata": metadata(), "tensors": [entry], "stage_ms": {}})


class OutOfMemoryAbove:
    """Stands in for a CUDA device (none exists on the test machine): the real model, but any
    batch larger than `limit` raises the error torch raises when GPU memory runs out."""

    def __init__(self, backend: TorchBackend, limit: int) -> None:
        self.backend, self.limit, self.calls = backend, limit, []

    def predict(self, batch: np.ndarray) -> list:
        self.calls.append(len(batch))
        if len(batch) > self.limit:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.backend.predict(batch)


def test_out_of_memory_halves_the_batch_and_loses_nothing(tmp_path) -> None:
    manifest = load_manifests(default_registry_dir(), ["demo-effdet"])["demo-effdet"]
    store = FileBlobStore(tmp_path)
    rng = np.random.default_rng(0)
    events = [_event(store, manifest, f"1.2.3.{i}", rng) for i in range(7)]
    plain = InferStage(manifest, TorchBackend(manifest), store).process_batch(events)
    guarded = OutOfMemoryAbove(TorchBackend(manifest), limit=2)
    halved = InferStage(manifest, guarded, store).process_batch(events)
    # 7 fails -> 3 + 4; 3 fails -> 1 + 2; 4 fails -> 2 + 2: every image predicted exactly once
    assert guarded.calls == [7, 3, 1, 2, 4, 2, 2] and sum(c for c in guarded.calls if c <= 2) == 7
    assert [r[0].value["sop_uid"] for r in halved] == [e.value["sop_uid"] for e in events]
    for a, b in zip(plain, halved):
        assert [d["score"] for d in a[0].value["detections"]] == pytest.approx([d["score"] for d in b[0].value["detections"]], abs=1e-5)


def test_a_single_image_that_does_not_fit_is_a_transient_error(tmp_path) -> None:
    manifest = load_manifests(default_registry_dir(), ["demo-classifier"])["demo-classifier"]
    store = FileBlobStore(tmp_path)
    events = [_event(store, manifest, "1.2.3.1", np.random.default_rng(1))]
    [result] = InferStage(manifest, OutOfMemoryAbove(TorchBackend(manifest), limit=0), store).process_batch(events)
    assert isinstance(result, TransientError) and result.code == "out_of_memory"


def test_onnxruntime_allocation_failures_count_as_out_of_memory() -> None:
    """ONNX Runtime's exceptions are not RuntimeErrors: its allocation failure (the real class,
    with the message its CUDA allocator gives) halves the batch like torch's; its other errors,
    here a real one from a wrong input shape, do not."""
    from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException

    from radstream.models.backends.onnxruntime_backend import OnnxRuntimeBackend
    from radstream.streams.stages.infer import is_out_of_memory

    assert not issubclass(RuntimeException, RuntimeError)
    assert is_out_of_memory(RuntimeException("Failed to allocate memory for requested buffer of size 1073741824"))
    backend = OnnxRuntimeBackend(load_manifests(default_registry_dir(), ["demo-qc"])["demo-qc"], threads=1)
    with pytest.raises(Exception) as info:
        backend.session.run(None, {"input": np.zeros((1, 1, 7, 7), np.float32)})
    assert type(info.value).__module__.startswith("onnxruntime") and not is_out_of_memory(info.value)


@pytest.mark.parametrize("backend,expected", [
    ("onnxruntime-cpu", 4), ("torch-cpu", 4), ("loading", 4),  # before the model is open: as a CPU
    ("onnxruntime-cuda", 8), ("torch-cuda", 8), ("tensorrt", 8),
])
def test_a_laned_infer_takes_a_small_batch_on_a_cpu_and_keeps_its_batch_on_a_gpu(tmp_path, backend: str,
                                                                                  expected: int) -> None:
    """While laned, an urgent image waits for the forward pass in hand (D-057)."""
    manifest = load_manifests(default_registry_dir())["demo-qc"]
    stage = InferStage(manifest, None, FileBlobStore(tmp_path), max_batch=8, backend_name=backend)
    assert stage.laned_batch() == expected
    assert InferStage(manifest, None, FileBlobStore(tmp_path), max_batch=2, backend_name=backend).laned_batch() == 2
