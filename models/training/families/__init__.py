"""Training, per model family: what serving never needs.

A trainer fits a family's network in place on a `TrainingSet` and returns wall seconds.
Its module is imported on first use, from the same family table as the serving adapters
(models/families), so effdet's or rfdetr's training parts load only where a model trains.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from torch import nn

from radstream.models.families import FAMILY_MODULES, get_family

Progress = Callable[[str], None]


@dataclass
class TrainingSet:
    """Normalised tensors plus targets, all in tensor pixels.

    `targets` is (N, L) image-level truth; `boxes[i]` is (K, 4) x1, y1, x2, y2 and
    `box_labels[i]` (K,) label indices, for detectors.
    """

    x: np.ndarray
    targets: np.ndarray
    boxes: list[np.ndarray] = field(default_factory=list)
    box_labels: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.x)


class Trainer(Protocol):
    def __call__(self, net: nn.Module, data: TrainingSet, epochs: int, progress: Progress, seed: int = 0,
                 **options: Any) -> float:
        """Fit in place; return wall seconds."""
        ...


def train_family(family: str, net: nn.Module, data: TrainingSet, epochs: int, progress: Progress,
                 seed: int = 0, **options: Any) -> float:
    """Train `net` (built by `get_family(family).build`) with its family's own losses."""
    get_family(family)  # the one-line ValueError for an unknown family
    module = importlib.import_module(f"{__name__}.{FAMILY_MODULES[family]}")
    trainer: Trainer = module.TRAINERS[family]
    return trainer(net, data, epochs, progress, seed=seed, **options)
