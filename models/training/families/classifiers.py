"""Training the standard classifier backbones (DenseNet, EfficientNet)."""

from __future__ import annotations

from torch import nn

from radstream.models.training.families import Progress, TrainingSet
from radstream.models.training.loops import train_classifier, train_multilabel


def train_densenet(net: nn.Module, data: TrainingSet, epochs: int, progress: Progress, seed: int = 0) -> float:
    """With boxes and one label: image BCE plus dense heatmap supervision of the logit map."""
    if data.boxes and data.targets.shape[1] == 1:
        return train_classifier(net, data.x, data.boxes, epochs, progress, seed=seed)
    return train_multilabel(net, data.x, data.targets, epochs, progress, seed=seed)


def train_efficientnet(net: nn.Module, data: TrainingSet, epochs: int, progress: Progress, seed: int = 0) -> float:
    """Image-level BCE per label; boxes are ignored (the head pools the whole image)."""
    return train_multilabel(net, data.x, data.targets, epochs, progress, seed=seed)


TRAINERS = {"densenet": train_densenet, "efficientnet": train_efficientnet}
