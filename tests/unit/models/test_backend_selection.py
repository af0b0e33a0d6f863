"""Engine cache keys, TensorRT profile shapes, and which backend the infer stage opens (and why):
TensorRT, then ONNX Runtime (CUDA or CPU provider), then torch, or the one RADSTREAM_BACKEND forces.

`choose_backend` is pure given a `Platform`, so the GPU and TensorRT branches are tested
here with Platform values; `probe_platform` is tested against the real environment and
against fake `tensorrt` packages put on sys.path.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from radstream.models.backends.engine_cache import (engine_batch, engine_key, engine_path, find_engine,
                                                    timing_cache_path)
from radstream.models.backends.select import Platform, choose_backend, open_backend, probe_platform
from radstream.models.backends.tensorrt_backend import batch_profile, profile_shapes
from radstream.models.backends.torch_backend import TorchBackend, autocast_dtype, batch_bucket
from radstream.models.families import get_family
from radstream.models.manifest import ModelLoadError, ModelManifest
from radstream.models.registry import default_registry_dir, load_manifests
from radstream.streams.config import Config

H200 = Platform(cuda=True, compute_capability="sm90", tensorrt_version="10.3.0")


@pytest.fixture
def detector() -> ModelManifest:
    manifest = load_manifests(default_registry_dir(), ["demo-effdet"])["demo-effdet"]
    manifest.backends = ["tensorrt", "torch"]
    return manifest


def _cached_engine(cache: Path, manifest: ModelManifest, max_batch: int = 64) -> Path:
    path = engine_path(cache, engine_key(manifest, "sm90", "10.3.0", "fp16", max_batch))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"engine")
    return path


def test_every_key_component_changes_the_engine_file(detector: ModelManifest) -> None:
    base = engine_key(detector, "sm90", "10.3.0", "fp16", 64)
    retrained = replace(detector, architecture={"width": 32})
    variants = [engine_key(retrained, "sm90", "10.3.0", "fp16", 64), replace(base, compute_capability="sm89"),
                replace(base, tensorrt_version="10.4.0"), replace(base, precision="fp32"), replace(base, max_batch=8)]
    names = {base.filename, *(v.filename for v in variants)}
    assert len(names) == 6
    assert retrained.content_hash() != detector.content_hash() and detector.content_hash() in base.filename
    assert engine_batch(engine_path(Path("/c"), base)) == 64


def test_timing_cache_is_shared_by_models_but_not_by_gpus_or_versions(tmp_path: Path) -> None:
    path = timing_cache_path(tmp_path, "sm90", "10.3.0")
    assert path.parent == tmp_path
    assert len({path, timing_cache_path(tmp_path, "sm80", "10.3.0"), timing_cache_path(tmp_path, "sm90", "10.4.0")}) == 3


def test_key_rejects_unknown_precision_and_empty_batch(detector: ModelManifest) -> None:
    with pytest.raises(ValueError, match="precision"):
        engine_key(detector, "sm90", "10.3.0", "int4", 8)
    with pytest.raises(ValueError, match="max_batch"):
        engine_key(detector, "sm90", "10.3.0", "fp16", 0)


def test_find_engine_takes_the_smallest_cached_batch_that_fits(tmp_path: Path, detector: ModelManifest) -> None:
    want8 = engine_key(detector, "sm90", "10.3.0", "fp16", 8)
    assert find_engine(tmp_path, want8) is None
    _cached_engine(tmp_path, detector, 4)  # too small for batches of 8
    assert find_engine(tmp_path, want8) is None
    b64, b16 = _cached_engine(tmp_path, detector, 64), _cached_engine(tmp_path, detector, 16)
    assert find_engine(tmp_path, want8) == b16
    assert find_engine(tmp_path, replace(want8, max_batch=32)) == b64
    assert find_engine(tmp_path, replace(want8, tensorrt_version="10.4.0")) is None
    assert find_engine(tmp_path, replace(want8, content_hash="0" * 16)) is None


def test_config_reads_the_engine_cache_setting(tmp_path: Path) -> None:
    assert Config.from_env(env={"RADSTREAM_ENGINE_CACHE": str(tmp_path)}).engine_cache == tmp_path
    assert Config.from_env(env={}).engine_cache == Path.home() / ".cache" / "radstream" / "engines"


def test_config_reads_the_torch_cuda_settings() -> None:
    default = Config.from_env(env={})
    assert (default.torch_precision, default.cuda_graphs) == ("fp16", False)
    chosen = Config.from_env(env={"RADSTREAM_TORCH_PRECISION": "bf16", "RADSTREAM_CUDA_GRAPHS": "1"})
    assert (chosen.torch_precision, chosen.cuda_graphs) == ("bf16", True)
    with pytest.raises(ValueError, match="RADSTREAM_TORCH_PRECISION='int8': expected one of fp16, bf16, fp32"):
        Config.from_env(env={"RADSTREAM_TORCH_PRECISION": "int8"})
    with pytest.raises(ValueError, match="RADSTREAM_CUDA_GRAPHS='yes'"):
        Config.from_env(env={"RADSTREAM_CUDA_GRAPHS": "yes"})


def test_autocast_dtype_per_precision_and_bf16_falls_back_on_old_gpus(caplog) -> None:
    assert autocast_dtype("fp16", bf16_supported=True) is torch.float16
    assert autocast_dtype("bf16", bf16_supported=True) is torch.bfloat16
    assert autocast_dtype("fp32", bf16_supported=True) is None
    with caplog.at_level(logging.WARNING, logger="radstream.models.backends.torch_backend"):
        assert autocast_dtype("bf16", bf16_supported=False) is torch.float16
    assert "BF16 is not supported on this GPU; running FP16 instead" in caplog.text
    with pytest.raises(ValueError, match="expected one of fp16, bf16, fp32"):
        autocast_dtype("fp8", bf16_supported=True)


def test_batch_buckets_are_the_next_power_of_two() -> None:
    assert [batch_bucket(n) for n in (1, 2, 3, 4, 5, 8, 9, 64)] == [1, 2, 4, 4, 8, 8, 16, 64]
    with pytest.raises(ValueError):
        batch_bucket(0)


def test_cuda_options_are_inert_on_the_cpu_and_checked(detector: ModelManifest) -> None:
    """CUDA graphs and autocast apply only on CUDA (the graph capture itself needs a GPU: not
    tested here). On the CPU the backend says so, and still rejects a precision it does not know."""
    backend = open_backend(detector, "cpu", Path("/nonexistent"), 8, torch_precision="bf16", cuda_graphs=True,
                           backend="torch")
    assert (backend.name, backend.detail, backend.cuda_graphs) == ("torch-cpu", "fp32", False)
    assert len(backend.predict(np.zeros((3, 1, 256, 256), np.float32))) == 3
    with pytest.raises(ValueError, match="torch precision 'half'"):
        TorchBackend(detector, precision="half")


def test_profile_shapes(detector: ModelManifest) -> None:
    assert profile_shapes(detector, 64) == ((1, 1, 256, 256), (32, 1, 256, 256), (64, 1, 256, 256))
    assert batch_profile(3, 128, 1) == ((1, 3, 128, 128),) * 3
    assert batch_profile(1, 64, 5)[1] == (2, 1, 64, 64)
    with pytest.raises(ValueError):
        batch_profile(1, 64, 0)


def test_tensorrt_is_chosen_only_with_an_engine_cuda_and_the_manifest_asking(tmp_path: Path,
                                                                             detector: ModelManifest) -> None:
    miss = choose_backend(detector, "auto", tmp_path, 8, H200)
    assert miss.backend == "torch-cuda" and "run `radstream models compile`" in miss.reason
    engine = _cached_engine(tmp_path, detector)
    hit = choose_backend(detector, "auto", tmp_path, 8, H200)
    assert (hit.backend, hit.engine, hit.device) == ("tensorrt", engine, "cuda:0")
    assert choose_backend(detector, "cuda:1", tmp_path, 8, H200).device == "cuda:1"
    cpu = choose_backend(detector, "cpu", tmp_path, 8, H200)
    assert cpu.backend == "torch-cpu" and "TensorRT needs a CUDA device" in cpu.reason
    no_trt = choose_backend(detector, "auto", tmp_path, 8, replace(H200, tensorrt_version=None))
    # this fixture's manifest does not list onnx, so ONNX Runtime is not a candidate either
    assert no_trt.backend == "torch-cuda"
    assert no_trt.reason == "TensorRT not installed; manifest backends: tensorrt, torch"


def test_a_manifest_not_listing_tensorrt_never_gets_it(tmp_path: Path, detector: ModelManifest) -> None:
    for backends in (["torch"], ["torch", "onnx"]):
        manifest = replace(detector, backends=backends)
        _cached_engine(tmp_path, manifest)  # an engine that would fit, were TensorRT allowed
        choice = choose_backend(manifest, "auto", tmp_path, 8, H200)
        assert choice.backend == "torch-cuda" and choice.engine is None
        expected = f"manifest backends: {', '.join(backends)}"
        if "onnx" in backends:  # allowed, but H200 here has no ONNX Runtime
            expected += "; ONNX Runtime not installed"
        assert choice.reason == expected
    # listed anywhere (train_demo copies the family's ("torch", "onnx", "tensorrt")), it is preferred
    listed_last = replace(detector, backends=["torch", "onnx", "tensorrt"])
    _cached_engine(tmp_path, listed_last)  # the backends are part of the manifest, so of its content hash
    assert choose_backend(listed_last, "auto", tmp_path, 8, H200).backend == "tensorrt"


def test_a_family_that_cannot_run_on_tensorrt_never_gets_it(tmp_path: Path, detector: ModelManifest) -> None:
    frcnn = replace(detector, family="faster-rcnn")
    _cached_engine(tmp_path, frcnn)
    choice = choose_backend(frcnn, "auto", tmp_path, 8, H200)
    assert choice.backend == "torch-cuda" and "family faster-rcnn cannot run on TensorRT" in choice.reason


def test_asking_for_cuda_without_one_is_a_load_error(tmp_path: Path, detector: ModelManifest) -> None:
    with pytest.raises(ModelLoadError, match="RADSTREAM_DEVICE=cuda but no CUDA device"):
        choose_backend(detector, "cuda", tmp_path, 8, Platform(cuda=False))
    with pytest.raises(ModelLoadError, match="expected auto, cpu, cuda or cuda:N"):
        choose_backend(detector, "gpu", tmp_path, 8, Platform(cuda=False))


def test_here_it_falls_back_to_torch_and_logs_why(tmp_path: Path, detector: ModelManifest, caplog) -> None:
    """This machine has neither CUDA nor TensorRT; on one with both the reason is the empty cache.
    The fixture's manifest does not allow ONNX Runtime, so torch it is."""
    platform = probe_platform("auto")
    with caplog.at_level(logging.INFO, logger="radstream.models.backends.select"):
        backend = open_backend(detector, "auto", tmp_path, 8)
    expected = "torch-cuda" if platform.cuda else "torch-cpu"
    why = platform.tensorrt_problem if platform.tensorrt_version is None else "no fp16 engine"
    assert backend.name == expected
    assert f"model demo-effdet: backend {expected}, {backend.detail} ({why}" in caplog.text
    assert "manifest backends: tensorrt, torch" in caplog.text
    assert len(backend.predict(np.zeros((2, 1, 256, 256), np.float32))) == 2


@pytest.fixture
def fake_tensorrt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A real `tensorrt` package on sys.path with the given body: how a broken install looks to
    Python, without patching the import machinery."""
    def install(body: str) -> None:
        package = tmp_path / "fake_site" / "tensorrt"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(body)
        monkeypatch.syspath_prepend(str(package.parent))
        monkeypatch.delitem(sys.modules, "tensorrt", raising=False)

    yield install
    sys.modules.pop("tensorrt", None)


def test_tensorrt_present_but_unimportable_is_a_reason_not_a_crash(fake_tensorrt, tmp_path: Path,
                                                                   detector: ModelManifest, caplog) -> None:
    fake_tensorrt('raise ImportError("libnvinfer.so.10: cannot open shared object file")')
    platform = probe_platform("cpu")
    assert platform.tensorrt_version is None
    assert platform.tensorrt_problem == ("TensorRT present but unusable: ImportError: "
                                         "libnvinfer.so.10: cannot open shared object file")
    with caplog.at_level(logging.INFO, logger="radstream.models.backends.select"):
        assert open_backend(detector, "cpu", tmp_path, 8, platform).name == "torch-cpu"  # no onnx in its manifest
    assert "backend torch-cpu, fp32 (TensorRT present but unusable: ImportError: libnvinfer" in caplog.text


def test_tensorrt_failing_otherwise_on_import_is_also_a_reason(fake_tensorrt) -> None:
    fake_tensorrt('raise OSError("CUDA driver version is insufficient")')
    assert "unusable: OSError: CUDA driver" in probe_platform("cpu").tensorrt_problem


def test_an_importable_tensorrt_reports_its_version(fake_tensorrt) -> None:
    fake_tensorrt('__version__ = "10.3.0"')
    platform = probe_platform("cpu")
    assert (platform.tensorrt_version, platform.cuda) == ("10.3.0", False)


def _env(tmp_path: Path) -> dict[str, str]:
    return {"RADSTREAM_BLOB_URL": str(tmp_path / "blobs"), "RADSTREAM_DEVICE": "cpu",
            "RADSTREAM_ENGINE_CACHE": str(tmp_path / "engines")}


def test_infer_stage_health_reports_the_backend_it_opened(tmp_path: Path) -> None:
    from radstream.streams.stages.registry import build_stage

    config = Config.from_env(env=_env(tmp_path))
    stage = build_stage("infer", config, "demo-qc")
    assert stage.health()["models"][0]["backend"] == "loading"  # the model opens after the group join (D-043)
    stage.start()
    stage.wait_for_model()
    assert stage.backend.name == "onnxruntime-cpu"  # no CUDA, no TensorRT here; the manifest allows onnx
    assert stage.health()["models"][0]["backend"] == "onnxruntime-cpu"
    assert stage.max_batch == 8  # the batch the engine lookup asked for
    forced = build_stage("infer", Config.from_env(env={**_env(tmp_path), "RADSTREAM_BACKEND": "torch"}), "demo-qc")
    forced.wait_for_model()
    assert forced.health()["models"][0]["backend"] == "torch-cpu"


ORT_CPU = Platform(cuda=False, onnxruntime_version="1.32.0", onnxruntime_providers=("CPUExecutionProvider",))
ORT_GPU = replace(H200, onnxruntime_version="1.32.0",
                  onnxruntime_providers=("CUDAExecutionProvider", "CPUExecutionProvider"))


@pytest.fixture
def exportable(detector: ModelManifest) -> ModelManifest:
    return replace(detector, backends=["torch", "onnx", "tensorrt"])


def test_onnxruntime_comes_after_tensorrt_and_before_torch(tmp_path: Path, exportable: ModelManifest) -> None:
    cpu = choose_backend(exportable, "auto", tmp_path, 8, ORT_CPU)
    assert (cpu.backend, cpu.device) == ("onnxruntime-cpu", "cpu")
    assert cpu.reason == "TensorRT not installed; no CUDA device"
    gpu = choose_backend(exportable, "auto", tmp_path, 8, ORT_GPU)
    assert (gpu.backend, gpu.device) == ("onnxruntime-cuda", "cuda:0")
    assert "no fp16 engine for batch 8" in gpu.reason
    _cached_engine(tmp_path, exportable)
    assert choose_backend(exportable, "auto", tmp_path, 8, ORT_GPU).backend == "tensorrt"
    assert choose_backend(exportable, "cpu", tmp_path, 8, ORT_GPU).backend == "onnxruntime-cpu"


def test_a_gpu_without_the_cuda_provider_keeps_torch_on_cuda(tmp_path: Path, exportable: ModelManifest) -> None:
    """ONNX Runtime on the CPU is not preferred to torch on a GPU; forced, it may run on the CPU
    when RADSTREAM_DEVICE allows (auto), and refuses when the setting asks for CUDA."""
    cpu_only = replace(ORT_GPU, onnxruntime_providers=("CPUExecutionProvider",))
    auto = choose_backend(exportable, "auto", tmp_path, 8, cpu_only)
    assert auto.backend == "torch-cuda"
    assert "onnxruntime 1.32.0 has no CUDA execution provider (onnxruntime-gpu is not installed)" in auto.reason
    forced = choose_backend(exportable, "auto", tmp_path, 8, cpu_only, backend="onnxruntime")
    assert (forced.backend, forced.device) == ("onnxruntime-cpu", "cpu")
    with pytest.raises(ModelLoadError, match="RADSTREAM_BACKEND=onnxruntime, but .*no CUDA execution provider"):
        choose_backend(exportable, "cuda", tmp_path, 8, cpu_only, backend="onnxruntime")


def test_a_forced_backend_is_that_one_or_a_one_line_error(tmp_path: Path, exportable: ModelManifest,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _cached_engine(tmp_path, exportable)
    assert choose_backend(exportable, "auto", tmp_path, 8, ORT_GPU, backend="tensorrt").backend == "tensorrt"
    assert choose_backend(exportable, "auto", tmp_path, 8, ORT_GPU, backend="onnxruntime").backend == "onnxruntime-cuda"
    torch_choice = choose_backend(exportable, "auto", tmp_path, 8, ORT_GPU, backend="torch")
    assert (torch_choice.backend, torch_choice.reason) == ("torch-cuda", "RADSTREAM_BACKEND=torch")
    with pytest.raises(ModelLoadError, match="demo-effdet-1: RADSTREAM_BACKEND=tensorrt, but TensorRT not installed"):
        choose_backend(exportable, "auto", tmp_path, 8, ORT_CPU, backend="tensorrt")
    with pytest.raises(ModelLoadError, match="RADSTREAM_BACKEND=tensorrt, but TensorRT needs a CUDA device"):
        choose_backend(exportable, "cpu", tmp_path, 8, ORT_GPU, backend="tensorrt")
    monkeypatch.setattr(get_family("tiny-cnn"), "backends", ("torch",))  # every shipped family exports (D-059)
    with pytest.raises(ModelLoadError, match="RADSTREAM_BACKEND=onnxruntime, but family tiny-cnn does not export"):
        choose_backend(replace(exportable, family="tiny-cnn"), "auto", tmp_path, 8, ORT_CPU, backend="onnxruntime")
    with pytest.raises(ModelLoadError, match="RADSTREAM_BACKEND=onnxruntime, but ONNX Runtime not installed"):
        choose_backend(exportable, "auto", tmp_path, 8, Platform(cuda=False), backend="onnxruntime")
    with pytest.raises(ModelLoadError, match="RADSTREAM_BACKEND='openvino': expected one of auto, tensorrt"):
        choose_backend(exportable, "auto", tmp_path, 8, ORT_CPU, backend="openvino")


def test_faster_rcnn_runs_on_onnxruntime_but_never_on_tensorrt(tmp_path: Path, exportable: ModelManifest) -> None:
    frcnn = replace(exportable, family="faster-rcnn")
    _cached_engine(tmp_path, frcnn)
    choice = choose_backend(frcnn, "auto", tmp_path, 8, ORT_GPU)
    assert choice.backend == "onnxruntime-cuda" and "family faster-rcnn cannot run on TensorRT" in choice.reason


def test_config_reads_the_backend_setting() -> None:
    assert Config.from_env(env={}).backend == "auto"
    assert Config.from_env(env={"RADSTREAM_BACKEND": "torch"}).backend == "torch"
    with pytest.raises(ValueError, match="RADSTREAM_BACKEND='ort': expected one of auto, tensorrt, onnxruntime, torch"):
        Config.from_env(env={"RADSTREAM_BACKEND": "ort"})


def test_the_real_platform_reports_onnxruntime_and_its_providers() -> None:
    import onnxruntime

    platform = probe_platform("cpu")
    assert platform.onnxruntime_version == onnxruntime.__version__
    assert "CPUExecutionProvider" in platform.onnxruntime_providers and platform.onnxruntime_problem == ""
