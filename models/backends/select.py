"""Which backend runs a model: TensorRT when it can, else ONNX Runtime, else torch.

The order (D-018, D-031): TensorRT where an engine is compiled for this GPU; else ONNX Runtime,
on its CUDA execution provider where there is a GPU and the installed onnxruntime has that
provider, on its CPU provider where the model runs on the CPU; else torch (CUDA, then CPU). On a
GPU without ONNX Runtime's CUDA provider, torch on CUDA is preferred to ONNX Runtime on the CPU.
`RADSTREAM_BACKEND` forces one (`tensorrt`, `onnxruntime`, `torch`; default `auto`): a forced
backend that cannot run the model is a one-line load error, not a silent substitute.

The choice is made once per infer process and logged at INFO with its reason, so a slow
stage explains itself ("model demo-frcnn: backend onnxruntime-cpu (TensorRT: manifest backends:
torch, onnx; no CUDA device)"). `choose_backend` is pure given a `Platform`, so every branch is
tested on machines without a GPU; `probe_platform` is the only part that touches CUDA,
TensorRT and ONNX Runtime.
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

BACKEND_SETTINGS = ("auto", "tensorrt", "onnxruntime", "torch")
ORT_CUDA_PROVIDER = "CUDAExecutionProvider"


@dataclass(frozen=True)
class Platform:
    """What this process can use. `tensorrt_problem` says why `tensorrt_version` is None."""

    cuda: bool
    compute_capability: str | None = None  # "sm90", of the device the model would run on
    tensorrt_version: str | None = None
    tensorrt_problem: str = "TensorRT not installed"
    onnxruntime_version: str | None = None
    onnxruntime_providers: tuple[str, ...] = ()  # what `onnxruntime.get_available_providers()` lists
    onnxruntime_problem: str = "ONNX Runtime not installed"


@dataclass(frozen=True)
class Choice:
    backend: str  # "tensorrt", "onnxruntime-cuda", "onnxruntime-cpu", "torch-cuda" or "torch-cpu"
    device: str  # torch device string
    reason: str
    engine: Path | None = None


@dataclass
class _Reasons:
    items: list[str] = field(default_factory=list)

    def add(self, reason: str) -> None:
        if reason not in self.items:
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
    """CUDA, TensorRT and ONNX Runtime as this process sees them; never raises for a missing or
    broken TensorRT or ONNX Runtime."""
    import torch

    wanted = cuda_device(device_setting)
    cuda = wanted is not None and torch.cuda.is_available() and torch.device(wanted).index < torch.cuda.device_count()
    capability = compute_capability_tag(*torch.cuda.get_device_capability(wanted)) if cuda else None
    return Platform(cuda, capability, *_probe_tensorrt(), *_probe_onnxruntime())


def _problem(library: str, exc: BaseException) -> str:
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{library} present but unusable: {type(exc).__name__}: {first}"


def _probe_tensorrt() -> tuple[str | None, str]:
    try:
        import tensorrt

        return str(tensorrt.__version__), ""
    except ImportError as exc:
        if exc.name == "tensorrt":
            return None, "TensorRT not installed"
        return None, _problem("TensorRT", exc)
    except Exception as exc:  # a broken install (missing libnvinfer, ABI mismatch): a reason, not a crash
        return None, _problem("TensorRT", exc)


def _probe_onnxruntime() -> tuple[str | None, tuple[str, ...], str]:
    try:
        import onnxruntime

        return str(onnxruntime.__version__), tuple(onnxruntime.get_available_providers()), ""
    except ImportError as exc:
        if exc.name == "onnxruntime":
            return None, (), "ONNX Runtime not installed"
        return None, (), _problem("ONNX Runtime", exc)
    except Exception as exc:  # e.g. onnxruntime-gpu against a missing CUDA library
        return None, (), _problem("ONNX Runtime", exc)


def choose_backend(manifest: ModelManifest, device_setting: str, engine_cache_dir: Path, max_batch: int,
                   platform: Platform, precision: str = "fp16", backend: str = "auto") -> Choice:
    """The first of TensorRT, ONNX Runtime and torch that can run `manifest` here (module
    docstring), or the one `backend` forces. The manifest's `backends` is an allow-list, not an
    order: torch is always allowed, every family runs under it; "onnx" allows ONNX Runtime and
    "tensorrt" TensorRT."""
    if backend not in BACKEND_SETTINGS:
        raise ModelLoadError(f"RADSTREAM_BACKEND={backend!r}: expected one of {', '.join(BACKEND_SETTINGS)}")
    wanted = cuda_device(device_setting)
    if wanted is not None and device_setting != "auto" and not platform.cuda:
        raise ModelLoadError(f"{manifest.key}: RADSTREAM_DEVICE={device_setting} but no CUDA device is available")
    reasons = _Reasons()
    if backend in ("auto", "tensorrt"):
        if "tensorrt" in manifest.backends:
            engine = _tensorrt_engine(manifest, wanted, engine_cache_dir, max_batch, platform, precision, reasons)
            if engine is not None:
                return Choice("tensorrt", str(wanted), f"engine {engine.name}", engine)
        else:
            reasons.add(f"manifest backends: {', '.join(manifest.backends)}")
        if backend == "tensorrt":
            raise ModelLoadError(f"{manifest.key}: RADSTREAM_BACKEND=tensorrt, but {reasons.text('')}")
    if backend in ("auto", "onnxruntime"):
        choice = _onnxruntime(manifest, wanted, device_setting, platform, reasons, forced=backend == "onnxruntime")
        if choice is not None:
            return choice
        if backend == "onnxruntime":
            raise ModelLoadError(f"{manifest.key}: RADSTREAM_BACKEND=onnxruntime, but {reasons.text('')}")
    if backend == "torch":
        reasons.add("RADSTREAM_BACKEND=torch")
    return _torch(wanted, platform, reasons)


def _onnxruntime(manifest: ModelManifest, wanted: str | None, device_setting: str, platform: Platform,
                 reasons: _Reasons, forced: bool) -> Choice | None:
    """ONNX Runtime on CUDA or on the CPU, or None with the reason added."""
    family_backends = _family_backends(manifest, reasons)
    if family_backends is None:
        return None
    if "onnx" not in family_backends:
        reasons.add(f"family {manifest.family} does not export to ONNX")
    elif "onnx" not in manifest.backends:
        reasons.add(f"manifest backends: {', '.join(manifest.backends)}")
    elif platform.onnxruntime_version is None:
        reasons.add(platform.onnxruntime_problem)
    elif wanted is None or not platform.cuda:
        reasons.add("RADSTREAM_DEVICE=cpu" if wanted is None else "no CUDA device")
        return Choice("onnxruntime-cpu", "cpu", reasons.text(""))
    elif ORT_CUDA_PROVIDER in platform.onnxruntime_providers:
        return Choice("onnxruntime-cuda", wanted, reasons.text("CUDA execution provider"))
    else:
        reasons.add(f"onnxruntime {platform.onnxruntime_version} has no CUDA execution provider "
                    "(onnxruntime-gpu is not installed)")
        if forced and device_setting == "auto":  # asked for ONNX Runtime, and the CPU is allowed
            return Choice("onnxruntime-cpu", "cpu", reasons.text(""))
    return None


def _family_backends(manifest: ModelManifest, reasons: _Reasons) -> tuple[str, ...] | None:
    """The backends the manifest's family can run on, or None with the reason (an unknown family) added."""
    try:
        return get_family(manifest.family).backends
    except ValueError as exc:
        reasons.add(str(exc))
        return None


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
    family_backends = _family_backends(manifest, reasons)
    if family_backends is None:
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
                 platform: Platform | None = None, torch_precision: str = "fp16", cuda_graphs: bool = False,
                 backend: str = "auto", threads: int = 0) -> Any:
    """The backend the infer stage runs `manifest` on; its `.name` is what /healthz reports.
    `torch_precision` and `cuda_graphs` apply when it is torch on CUDA (TorchBackend); `threads`
    is ONNX Runtime's intra-op pool (0: its default). ONNX Runtime's graphs are cached in
    `engine_cache_dir` beside the engines (graph_cache.py). Under `auto`, an engine or graph that
    fails to load falls back to torch with a warning; a forced backend's failure is the error."""
    from radstream.models.backends.torch_backend import TorchBackend

    platform = platform or probe_platform(device_setting)
    choice = choose_backend(manifest, device_setting, Path(engine_cache_dir), max_batch, platform, backend=backend)
    if choice.engine is not None:
        from radstream.models.backends.tensorrt_backend import TensorRTBackend

        try:
            opened = TensorRTBackend(manifest, choice.engine, device=choice.device)
        except (ModelLoadError, RuntimeError, OSError) as exc:  # a stale or corrupt engine: torch still works
            if backend != "auto":
                raise ModelLoadError(f"{manifest.key}: TensorRT engine {choice.engine} unusable: {_first_line(exc)}") from None
            log.warning("model %s: TensorRT engine %s unusable (%s); falling back to torch", manifest.name,
                        choice.engine, _first_line(exc))
            choice = Choice("torch-cuda", choice.device, f"engine {choice.engine.name} failed to load")
        else:
            log.info("model %s: backend %s (%s)", manifest.name, opened.name, choice.reason)
            return opened
    if choice.backend.startswith("onnxruntime"):
        from radstream.models.backends.onnxruntime_backend import OnnxRuntimeBackend

        try:
            opened = OnnxRuntimeBackend(manifest, device=choice.device, threads=threads, cache_dir=Path(engine_cache_dir))
        except ModelLoadError as exc:  # an export or session that fails: torch still runs every family
            if backend != "auto":
                raise
            log.warning("model %s: ONNX Runtime unusable (%s); falling back to torch", manifest.name, _first_line(exc))
            kind = "torch-cpu" if choice.device == "cpu" else "torch-cuda"
            choice = Choice(kind, choice.device, "ONNX Runtime failed to load")
        else:
            log.info("model %s: backend %s, %s (%s)", manifest.name, opened.name, opened.detail, choice.reason)
            return opened
    opened = TorchBackend(manifest, device=choice.device, precision=torch_precision, cuda_graphs=cuda_graphs)
    log.info("model %s: backend %s, %s (%s)", manifest.name, opened.name, opened.detail, choice.reason)
    return opened


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
