"""Training the tiny families (models/nets.py): CenterNet targets for the detector, BCE for the CNN."""

from __future__ import annotations

from torch import nn

from radstream.models.training.families import Progress, TrainingSet
from radstream.models.training.loops import train_classifier, train_detector, train_multilabel


def train_tiny_cnn(net: nn.Module, data: TrainingSet, epochs: int, progress: Progress, seed: int = 0) -> float:
    """With boxes: image BCE plus dense heatmap supervision (a single label); else plain multi-label BCE."""
    if data.boxes:
        return train_classifier(net, data.x, data.boxes, epochs, progress, seed=seed)
    return train_multilabel(net, data.x, data.targets, epochs, progress, seed=seed)


def train_tiny_centernet(net: nn.Module, data: TrainingSet, epochs: int, progress: Progress, seed: int = 0) -> float:
    return train_detector(net, data.x, data.boxes, epochs, progress, seed=seed)


TRAINERS = {"tiny-cnn": train_tiny_cnn, "tiny-centernet": train_tiny_centernet}
