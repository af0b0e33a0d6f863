"""Training Faster R-CNN with torchvision's own losses: RPN objectness + box, and the box
head's class + box."""

from __future__ import annotations

import torch
from torch import nn

from radstream.models.training.families import Progress, TrainingSet
from radstream.models.training.families.box_batches import batch_targets
from radstream.models.training.loops import _fit


def train_faster_rcnn(net: nn.Module, data: TrainingSet, epochs: int, progress: Progress, seed: int = 0,
                      batch_size: int = 16, lr: float = 2e-3) -> float:
    generator = torch.Generator().manual_seed(seed)

    def batch_loss(index: torch.Tensor) -> torch.Tensor:
        images, boxes, label_ids = batch_targets(data, index, generator)
        targets = [{"boxes": b, "labels": l + 1} for b, l in zip(boxes, label_ids)]
        return sum(net(list(images), targets).values())

    return _fit(net, len(data), epochs, batch_size, lr, generator, batch_loss, progress, "faster-rcnn")


TRAINERS = {"faster-rcnn": train_faster_rcnn}
