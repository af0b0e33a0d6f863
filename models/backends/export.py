"""ONNX export of a family's raw graph, and the parity check against torch.

What is exported is `family.raw_module(net)`: (N, C, S, S) float32 in, the raw tensors
`family.decode` reads out, so ONNX Runtime and TensorRT share torch's host-side decoder.
The input is named "input" and the outputs "output0", "output1"... in `raw_module`'s
order, with a dynamic batch axis on all of them, except for a family whose graph is per image
(`onnx_fixed_batch`: Faster R-CNN, batch 1), whose batches `run_graph` runs in chunks.

We use torch's TorchScript exporter (`dynamo=False`): the dynamo exporter needs
`onnxscript`, which this environment does not have, and every exportable family traces
to one graph anyway (Faster R-CNN's data-dependent proposals and NMS trace to ONNX's
NonMaxSuppression and RoiAlign, whose shapes follow the data at run time).

Graphs are made in memory (`export_graph`); only `export_onnx` (what `models compile` hands to
TensorRT) writes one to a file.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch import nn

from radstream.models.families import ModelFamily, get_family, onnx_fixed_batch
from radstream.models.manifest import ModelLoadError, ModelManifest
from radstream.models.profile import InputProfile

INPUT_NAME = "input"
DEFAULT_OPSET = 17
# FP32 on the CPU, same weights: torch (oneDNN) and ONNX Runtime (MLAS) differ only in
# summation order and fused kernels, about 1e-7 relative per op; over a few dozen layers that
# stays below 1e-5 on the sigmoid probabilities (bounded by 1) and on box regressions of a few
# hundred pixels, relative to the value (`max_difference`: absolute up to 1, relative above). 1e-4
# leaves a 10x margin and still fails on any real export error (a wrong op, a baked-in batch
# size, a train-mode BatchNorm), all of which show up as 1e-2 or more.
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


@dataclass(frozen=True)
class _Traceable:
    label: str  # for messages
    module: nn.Module  # eval-mode raw module on the CPU
    profile: InputProfile
    fixed_batch: int | None  # the family's onnx_fixed_batch: None for a dynamic batch axis


def _resolve(source: ExportSource) -> _Traceable:
    if isinstance(source, ModelManifest):
        try:
            family = get_family(source.family)
        except ValueError as exc:
            raise ModelLoadError(f"{source.key}: {exc}") from None
        check_exportable(family, source.key)  # before reading any weights
        from radstream.models.backends.torch_backend import TorchBackend

        net = TorchBackend(source, device="cpu").net
        return _Traceable(source.key, family.raw_module(net).cpu().eval(), source.input_profile,
                          onnx_fixed_batch(family))
    family, net, profile = source
    check_exportable(family, family.name)
    return _Traceable(family.name, family.raw_module(net).cpu().eval(), profile, onnx_fixed_batch(family))


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
    return _write(_export_bytes(_resolve(source), opset), Path(path))


def export_graph(source: ExportSource, opset: int = DEFAULT_OPSET) -> bytes:
    """The raw graph as serialized ONNX, in memory only (checked by onnx.checker): what the
    ONNX Runtime backend builds its session from, so decrypted weights never touch the disk."""
    return _export_bytes(_resolve(source), opset)


def _export_bytes(t: _Traceable, opset: int) -> bytes:
    import onnx

    # Trace at batch 2, not 1: a batch of 1 lets the tracer fold the batch axis into constants.
    # A family whose graph is per image is traced at its fixed batch, and keeps it.
    x = torch.from_numpy(sample_batch(t.profile, t.fixed_batch or 2))
    with torch.inference_mode():
        n_outputs = len(_as_tuple(t.module(x), t.label))
    outputs = [output_name(i) for i in range(n_outputs)]
    dynamic = None if t.fixed_batch else {n: {0: "batch"} for n in [INPUT_NAME, *outputs]}
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            # the legacy-exporter notice and the tracer's "converting a tensor to a Python value"
            # warnings (every shape check in the families) tell an operator nothing: parity is the check
            warnings.simplefilter("ignore")
            torch.onnx.export(t.module, (x,), buffer, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                              output_names=outputs, dynamic_axes=dynamic, do_constant_folding=True)
        graph = buffer.getvalue()
        onnx.checker.check_model(graph, full_check=True)
    except (RuntimeError, ValueError, TypeError, onnx.checker.ValidationError) as exc:
        raise NotExportableError(f"{t.label}: ONNX export failed: {str(exc).splitlines()[0]}") from None
    return graph


def _write(graph: bytes, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(graph)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def graph_batch(session: Any) -> int | None:
    """The fixed batch of a session's input, or None for a symbolic batch axis."""
    first = session.get_inputs()[0].shape[0]
    return first if isinstance(first, int) else None


def run_graph(session: Any, names: list[str], batch: np.ndarray) -> list[np.ndarray]:
    """`session` on `batch`, outputs `names`; a graph fixed at batch b runs in chunks of b
    (the last padded with zeros, the padding cut off), so callers never see the difference."""
    fixed = graph_batch(session)
    if fixed is None or len(batch) == fixed:
        return session.run(names, {INPUT_NAME: batch})
    chunks = []
    for i in range(0, len(batch), fixed):
        part = batch[i:i + fixed]
        n = len(part)
        if n < fixed:
            part = np.concatenate([part, np.zeros((fixed - n, *part.shape[1:]), part.dtype)])
        chunks.append([o[:n] for o in session.run(names, {INPUT_NAME: part})])
    return [np.concatenate(parts) for parts in zip(*chunks)]


def onnx_outputs(graph: Path | bytes, batch: np.ndarray) -> list[np.ndarray]:
    """The exported graph (a file, or bytes in memory) run by ONNX Runtime on the CPU, outputs in
    `raw_module`'s order."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(graph if isinstance(graph, bytes) else str(graph), options,
                                   providers=["CPUExecutionProvider"])
    names = sorted((o.name for o in session.get_outputs()), key=output_index)
    return run_graph(session, names, batch)


def parity(source: ExportSource, batch: int = 2, seed: int = 0, onnx_path: Path | None = None) -> list[float]:
    """`max_difference` per output between ONNX Runtime (CPU) and torch (CPU, FP32) on one
    seeded random batch; compare with PARITY_TOLERANCE.

    `onnx_path`: an already exported graph of the same source (else an export in memory).
    """
    return _parity(_resolve(source), batch, seed, onnx_path)


def export_checked(source: ExportSource, path: Path, batch: int = 2) -> list[float]:
    """`export_onnx` then `parity` on the written file, loading the weights once."""
    t = _resolve(source)
    _write(_export_bytes(t, DEFAULT_OPSET), Path(path))
    return _parity(t, batch, 0, Path(path))


def _parity(t: _Traceable, batch: int, seed: int, onnx_path: Path | None) -> list[float]:
    x = sample_batch(t.profile, batch, seed)
    with torch.inference_mode():
        if t.fixed_batch:  # torch's own graph is per image too: the same images, one at a time
            per_image = [_as_tuple(t.module(torch.from_numpy(x[i:i + 1])), t.label) for i in range(batch)]
            expected = [torch.cat(parts).float().numpy() for parts in zip(*per_image)]
        else:
            expected = [o.float().numpy() for o in _as_tuple(t.module(torch.from_numpy(x)), t.label)]
    actual = onnx_outputs(onnx_path or _export_bytes(t, DEFAULT_OPSET), x)
    if len(actual) != len(expected):
        raise ValueError(f"{t.label}: ONNX graph has {len(actual)} outputs, torch {len(expected)}")
    diffs = []
    for i, (a, e) in enumerate(zip(actual, expected)):
        if a.shape != e.shape:
            raise ValueError(f"{t.label}: output {i} shape {a.shape} under ONNX, {e.shape} under torch")
        diffs.append(max_difference(a, e))
    return diffs


# Beyond it an output value means nothing (scores lie in [0, 1], boxes within a few thousand
# pixels); a detector's raw box gets there only from noise input, as an exp of its regression.
OUTPUT_RANGE = 1e4


def max_difference(actual: np.ndarray, expected: np.ndarray) -> float:
    """Max difference, both sides clipped to +-OUTPUT_RANGE, relative to the largest value of the
    same row (last axis) where that exceeds 1, else absolute. Scores (one per label) compare
    absolutely; a raw box (x1, y1, x2, y2) on a random batch can be thousands of pixels wide, and
    a coordinate near 0 is then the difference of two large values, off by float32's rounding of
    them. Clipped, the same infinity on both sides differs by 0 (unclipped, inf - inf is NaN,
    which `max` over the outputs drops); a NaN on either side differs by infinity."""
    if not expected.size:
        return 0.0
    a, e = (np.atleast_1d(np.clip(v.astype(np.float64), -OUTPUT_RANGE, OUTPUT_RANGE)) for v in (actual, expected))
    scale = np.maximum(1.0, np.nan_to_num(np.abs(e)).max(axis=-1, keepdims=True))
    diff = np.abs(a - e) / scale
    return float(np.max(np.where(np.isnan(diff), np.inf, diff)))
