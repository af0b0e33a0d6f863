"""Model families behind one adapter interface.

A family knows how to build its network and turn the network's raw output tensors into
`ModelOutput`s. The split between `raw_module` (what is traced to ONNX and compiled to
TensorRT) and `decode` (host-side post-processing: sigmoid, anchor decoding, NMS, box
rescaling) is what lets every backend share one decoder. Training is not serving's: each
family's trainer is in models/training/families.
Boxes from `decode` are in TENSOR pixels; the infer stage undoes the letterbox.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Sequence
from typing import Any, Protocol

import torch
from torch import nn

from radstream.models.outputs import ModelOutput

# effdet and rfdetr call torch.jit.script when imported, and torch 2.14 warns that it is
# deprecated: a library's notice that would reach the terminal of every command that loads
# a model (`bench` printed it twice). Nothing here can act on it, so it is silenced by message.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)


class ModelFamily(Protocol):
    name: str
    tasks: tuple[str, ...]
    # Backends this family's graph can run on: "torch" always; "onnx"/"tensorrt" when
    # `raw_module` traces to a static graph with a dynamic batch axis; "onnx" alone for a graph
    # traced at a fixed batch (`onnx_fixed_batch`, below), whose shapes depend on the data.
    backends: tuple[str, ...]
    # Every architecture setting with its default. Manifests record these merged with their
    # overrides (`effective_architecture`), so a later change of a default cannot silently
    # change how a shipped model's weights are rebuilt.
    default_architecture: dict[str, Any]

    def build(self, n_labels: int, in_channels: int, size: int, architecture: dict[str, Any]) -> nn.Module: ...

    def raw_module(self, net: nn.Module) -> nn.Module:
        """An eval-mode module mapping (N, C, S, S) to the raw output tensors `decode` reads."""
        ...

    def decode(self, raw: Sequence[torch.Tensor], labels: Sequence[str], score_floor: float,
               top_k: int) -> list[ModelOutput]: ...


# family name -> module that defines FAMILY; imported on first use, so `effdet` or `rfdetr`
# load only in the processes that run those models.
FAMILY_MODULES = {
    "tiny-cnn": "tiny",
    "tiny-centernet": "tiny",
    "faster-rcnn": "faster_rcnn",
    "efficientdet": "efficientdet",
    "rf-detr": "rf_detr",
    "densenet": "classifiers",
    "efficientnet": "classifiers",
    "motion-spectrum": "spectral",
}


def onnx_fixed_batch(family: ModelFamily) -> int | None:
    """The batch size a family's ONNX graph is fixed at (Faster R-CNN: 1, its proposals and NMS
    are per image), or None for a dynamic batch axis, which also means static shapes (CUDA graphs
    and TensorRT can take it)."""
    return getattr(family, "onnx_fixed_batch", None)


def get_family(name: str) -> ModelFamily:
    """The adapter for a manifest's `family`; a one-line ValueError when unknown."""
    if name not in FAMILY_MODULES:
        raise ValueError(f"unknown model family {name!r}; known: {', '.join(sorted(FAMILY_MODULES))}")
    module = importlib.import_module(f"{__name__}.{FAMILY_MODULES[name]}")
    return module.FAMILIES[name]


def family_of(manifest: Any) -> ModelFamily:
    """The adapter for a manifest, or the one-line ModelLoadError a backend reports as unhealthy."""
    from radstream.models.manifest import ModelLoadError

    try:
        return get_family(manifest.family)
    except ValueError as exc:
        raise ModelLoadError(f"{manifest.key}: {exc}") from None


def effective_architecture(family: ModelFamily, overrides: dict[str, Any]) -> dict[str, Any]:
    """The family's defaults merged with a model's overrides: what a manifest records."""
    return {**family.default_architecture, **overrides}


def known_families() -> list[str]:
    return sorted(FAMILY_MODULES)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
