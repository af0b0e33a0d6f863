"""Which backend runs a model: TensorRT when it can, else torch on CUDA, else torch on the CPU.

The choice is made once per infer process and logged at INFO with its reason, so a slow
stage explains itself ("model demo-effdet: backend torch-cpu (TensorRT not installed; no
CUDA device)"). `choose_backend` is pure given a `Platform`, so every branch is tested on
machines without a GPU; `probe_platform` is the only part that touches CUDA and TensorRT.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radstream.models.families import get_family
from radstream.models.manifest import ModelLoadError, ModelManifest
from radstream.models.backends.engine_cache import compute_capability_tag, engine_key, find_engine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Platform:
    """What this process can use. `tensorrt_problem` says why `tensorrt_version` is None."""

    cuda: bool
    compute_capability: str | None = None  # "sm90", of the device the model would run on
    tensorrt_version: str | None = None
    tensorrt_problem: str = "TensorRT not installed"


@dataclass(frozen=True)
class Choice:
    backend: str  # "tensorrt", "torch-cuda" or "torch-cpu"
    device: str  # torch device string
    reason: str
    engine: Path | None = None


@dataclass
class _Reasons:
    items: list[str] = field(default_factory=list)

    def add(self, reason: str) -> None:
        self.items.append(reason)

    def text(self, default: str) -> str:
        return "; ".join(self.items) or default


def cuda_device(device_setting: str) -> str | None:
    """The CUDA device a setting asks for or allows ("auto" -> "cuda:0"); None for "cpu"."""
    if device_setting == "cpu":
        return None
    if device_setting in ("auto", "cuda"):
        return "cuda:0"
    if device_setting.startswith("cuda:") and device_setting[5:].isdigit():
        return device_setting
    raise ModelLoadError(f"RADSTREAM_DEVICE={device_setting!r}: expected auto, cpu, cuda or cuda:N")


def probe_platform(device_setting: str = "auto") -> Platform:
    """CUDA and TensorRT as this process sees them; never raises for a missing or broken TensorRT."""
    import torch

    wanted = cuda_device(device_setting)
    cuda = wanted is not None and torch.cuda.is_available() and torch.device(wanted).index < torch.cuda.device_count()
    capability = compute_capability_tag(*torch.cuda.get_device_capability(wanted)) if cuda else None
    try:
        import tensorrt

        return Platform(cuda, capability, str(tensorrt.__version__), "")
    except ImportError as exc:
        if exc.name == "tensorrt":
            return Platform(cuda, capability)
        problem = exc
    except Exception as exc:  # a broken install (missing libnvinfer, ABI mismatch): a reason, not a crash
        problem = exc
    return Platform(cuda, capability, None, f"TensorRT present but unusable: {type(problem).__name__}: "
                                            f"{str(problem).splitlines()[0] if str(problem) else ''}")


def choose_backend(manifest: ModelManifest, device_setting: str, engine_cache_dir: Path, max_batch: int,
                   platform: Platform, precision: str = "fp16") -> Choice:
    """TensorRT when the manifest lists it and an engine is cached for this GPU, else torch
    (on CUDA when the setting allows and there is one). The manifest's `backends` is an
    allow-list here, not an order: torch is always allowed, every family runs under it."""
    wanted = cuda_device(device_setting)
    if wanted is not None and device_setting != "auto" and not platform.cuda:
        raise ModelLoadError(f"{manifest.key}: RADSTREAM_DEVICE={device_setting} but no CUDA device is available")
    reasons = _Reasons()
    if "tensorrt" in manifest.backends:
        engine = _tensorrt_engine(manifest, wanted, engine_cache_dir, max_batch, platform, precision, reasons)
        if engine is not None:
            return Choice("tensorrt", str(wanted), f"engine {engine.name}", engine)
    else:
        reasons.add(f"manifest backends: {', '.join(manifest.backends)}")
    return _torch(wanted, platform, reasons)


def _torch(wanted: str | None, platform: Platform, reasons: _Reasons) -> Choice:
    if wanted is None:
        reasons.add("RADSTREAM_DEVICE=cpu")
        return Choice("torch-cpu", "cpu", reasons.text(""))
    if not platform.cuda:
        reasons.add("no CUDA device")
        return Choice("torch-cpu", "cpu", reasons.text(""))
    return Choice("torch-cuda", wanted, reasons.text("CUDA available"))


def _tensorrt_engine(manifest: ModelManifest, wanted: str | None, engine_cache_dir: Path, max_batch: int,
                     platform: Platform, precision: str, reasons: _Reasons) -> Path | None:
    """The cached engine to run, or None with the reason added."""
    try:
        family_backends = get_family(manifest.family).backends
    except ValueError as exc:
        reasons.add(str(exc))
        return None
    if "tensorrt" not in family_backends:
        reasons.add(f"family {manifest.family} cannot run on TensorRT")
    elif platform.tensorrt_version is None:
        reasons.add(platform.tensorrt_problem)
    elif wanted is None or not platform.cuda or platform.compute_capability is None:
        reasons.add("TensorRT needs a CUDA device")
    else:
        key = engine_key(manifest, platform.compute_capability, platform.tensorrt_version, precision, max_batch)
        engine = find_engine(engine_cache_dir, key)
        if engine is not None:
            return engine
        reasons.add(f"no {precision} engine for batch {max_batch} on {key.compute_capability} with TensorRT "
                    f"{key.tensorrt_version} in {engine_cache_dir} (run `radstream models compile`)")
    return None


def open_backend(manifest: ModelManifest, device_setting: str, engine_cache_dir: Path, max_batch: int,
                 platform: Platform | None = None, torch_precision: str = "fp16", cuda_graphs: bool = False) -> Any:
    """The backend the infer stage runs `manifest` on; its `.name` is what /healthz reports.
    `torch_precision` and `cuda_graphs` apply when it is torch on CUDA (TorchBackend)."""
    from radstream.models.backends.torch_backend import TorchBackend

    platform = platform or probe_platform(device_setting)
    choice = choose_backend(manifest, device_setting, Path(engine_cache_dir), max_batch, platform)
    if choice.engine is not None:
        from radstream.models.backends.tensorrt_backend import TensorRTBackend

        try:
            backend = TensorRTBackend(manifest, choice.engine, device=choice.device)
        except (ModelLoadError, RuntimeError, OSError) as exc:  # a stale or corrupt engine: torch still works
            log.warning("model %s: TensorRT engine %s unusable (%s); falling back to torch", manifest.name,
                        choice.engine, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            choice = Choice("torch-cuda", choice.device, f"engine {choice.engine.name} failed to load")
        else:
            log.info("model %s: backend %s (%s)", manifest.name, backend.name, choice.reason)
            return backend
    backend = TorchBackend(manifest, device=choice.device, precision=torch_precision, cuda_graphs=cuda_graphs)
    log.info("model %s: backend %s, %s (%s)", manifest.name, backend.name, backend.detail, choice.reason)
    return backend
