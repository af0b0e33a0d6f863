"""ONNX export of a family's raw graph, and the parity check against torch.

What is exported is `family.raw_module(net)`: (N, C, S, S) float32 in, the raw tensors
`family.decode` reads out, so ONNX Runtime and TensorRT share torch's host-side decoder.
The input is named "input" and the outputs "output0", "output1"... in `raw_module`'s
order, with a dynamic batch axis on all of them.

We use torch's TorchScript exporter (`dynamo=False`): the dynamo exporter needs
`onnxscript`, which this environment does not have, and every exportable family traces
to a static graph anyway (no data-dependent control flow).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch import nn

from radstream.models.families import ModelFamily, get_family
from radstream.models.manifest import ModelLoadError, ModelManifest
from radstream.models.profile import InputProfile

INPUT_NAME = "input"
DEFAULT_OPSET = 17
# FP32 on the CPU, same weights: torch (oneDNN) and ONNX Runtime (MLAS) differ only in
# summation order and fused kernels, about 1e-7 relative per op; over a few dozen layers that
# stays below 1e-5 on the sigmoid probabilities (bounded by 1) and on box regressions of a few
# hundred pixels. 1e-4 absolute leaves a 10x margin and still fails on any real export error
# (a wrong op, a baked-in batch size, a train-mode BatchNorm), all of which show up as 1e-2 or more.
PARITY_TOLERANCE = 1e-4

# A manifest (weights read and verified from its artifact), or a network already in memory.
ExportSource = Union[ModelManifest, tuple[ModelFamily, nn.Module, InputProfile]]


class NotExportableError(ModelLoadError):
    """A model whose family cannot be traced to a static ONNX graph (e.g. data-dependent NMS)."""


def output_name(index: int) -> str:
    return f"output{index}"


def output_index(name: str) -> int:
    """Position of an exported output in `raw_module`'s tuple (backends order by it)."""
    return int(name.removeprefix("output"))


def check_exportable(family: ModelFamily, what: str) -> None:
    if "onnx" not in family.backends:
        raise NotExportableError(f"{what}: family {family.name} does not export to ONNX "
                                 f"(its backends: {', '.join(family.backends)})")


def _resolve(source: ExportSource) -> tuple[str, nn.Module, InputProfile]:
    """(label for messages, eval-mode raw module on the CPU, input profile)."""
    if isinstance(source, ModelManifest):
        try:
            family = get_family(source.family)
        except ValueError as exc:
            raise ModelLoadError(f"{source.key}: {exc}") from None
        check_exportable(family, source.key)  # before reading any weights
        from radstream.models.backends.torch_backend import TorchBackend

        net = TorchBackend(source, device="cpu").net
        return source.key, family.raw_module(net).cpu().eval(), source.input_profile
    family, net, profile = source
    check_exportable(family, family.name)
    return family.name, family.raw_module(net).cpu().eval(), profile


def sample_batch(profile: InputProfile, batch: int, seed: int = 0) -> np.ndarray:
    """Seeded N(0, 1) noise: what a normalised profile tensor looks like to the network."""
    shape = (batch, profile.channels, profile.size, profile.size)
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def _as_tuple(raw: Any, label: str) -> tuple[torch.Tensor, ...]:
    outputs = raw if isinstance(raw, (tuple, list)) else (raw,)
    if not outputs or not all(isinstance(t, torch.Tensor) for t in outputs):
        raise NotExportableError(f"{label}: raw_module must return a tuple of tensors")
    return tuple(outputs)


def export_onnx(source: ExportSource, path: Path, opset: int = DEFAULT_OPSET) -> Path:
    """Write the raw graph as ONNX at `path` (atomically) and check it with onnx.checker.

    A network passed in memory is moved to the CPU: tracing and parity run there."""
    return _export(*_resolve(source), Path(path), opset)


def _export(label: str, module: nn.Module, profile: InputProfile, path: Path, opset: int) -> Path:
    import onnx

    # Trace at batch 2, not 1: a batch of 1 lets the tracer fold the batch axis into constants.
    x = torch.from_numpy(sample_batch(profile, 2))
    with torch.inference_mode():
        n_outputs = len(_as_tuple(module(x), label))
    outputs = [output_name(i) for i in range(n_outputs)]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
            torch.onnx.export(module, (x,), tmp, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                              output_names=outputs, dynamic_axes={n: {0: "batch"} for n in [INPUT_NAME, *outputs]},
                              do_constant_folding=True)
        onnx.checker.check_model(tmp, full_check=True)
        os.replace(tmp, path)
    except (RuntimeError, ValueError, TypeError, onnx.checker.ValidationError) as exc:
        raise NotExportableError(f"{label}: ONNX export failed: {str(exc).splitlines()[0]}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def onnx_outputs(onnx_path: Path, batch: np.ndarray) -> list[np.ndarray]:
    """The exported graph run by ONNX Runtime on the CPU, outputs in `raw_module`'s order."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    names = sorted((o.name for o in session.get_outputs()), key=output_index)
    return session.run(names, {INPUT_NAME: batch})


def parity(source: ExportSource, batch: int = 2, seed: int = 0, onnx_path: Path | None = None) -> list[float]:
    """Max absolute difference per output between ONNX Runtime (CPU) and torch (CPU, FP32)
    on one seeded random batch; compare with PARITY_TOLERANCE.

    `onnx_path`: an already exported graph of the same source (else a temporary export).
    """
    return _parity(*_resolve(source), batch, seed, onnx_path)


def export_checked(source: ExportSource, path: Path, batch: int = 2) -> list[float]:
    """`export_onnx` then `parity` on the written file, loading the weights once."""
    label, module, profile = _resolve(source)
    _export(label, module, profile, Path(path), DEFAULT_OPSET)
    return _parity(label, module, profile, batch, 0, Path(path))


def _parity(label: str, module: nn.Module, profile: InputProfile, batch: int, seed: int,
            onnx_path: Path | None) -> list[float]:
    x = sample_batch(profile, batch, seed)
    with torch.inference_mode():
        expected = [t.float().numpy() for t in _as_tuple(module(torch.from_numpy(x)), label)]
    with tempfile.TemporaryDirectory() as tmp:
        path = onnx_path or _export(label, module, profile, Path(tmp) / "model.onnx", DEFAULT_OPSET)
        actual = onnx_outputs(path, x)
    if len(actual) != len(expected):
        raise ValueError(f"{label}: ONNX graph has {len(actual)} outputs, torch {len(expected)}")
    diffs = []
    for i, (a, e) in enumerate(zip(actual, expected)):
        if a.shape != e.shape:
            raise ValueError(f"{label}: output {i} shape {a.shape} under ONNX, {e.shape} under torch")
        diffs.append(float(np.max(np.abs(a.astype(np.float64) - e))) if e.size else 0.0)
    return diffs
