"""Training EfficientDet: effdet's own focal + Huber loss over anchors labelled by its ArgMax
matcher (every nodule is force-matched to its best anchor, however small)."""

from __future__ import annotations

import torch
from effdet import DetBenchTrain
from effdet.anchors import AnchorLabeler
from torch import nn

from radstream.models.families.efficientdet import DEFAULT_ARCHITECTURE
from radstream.models.training.families import Progress, TrainingSet
from radstream.models.training.families.box_batches import batch_targets
from radstream.models.training.loops import _fit


def train_efficientdet(net: nn.Module, data: TrainingSet, epochs: int, progress: Progress, seed: int = 0,
                       batch_size: int = 16, lr: float = 4e-3, match_threshold: float | None = None) -> float:
    generator = torch.Generator().manual_seed(seed)
    bench = DetBenchTrain(net, create_labeler=False)
    threshold = match_threshold or DEFAULT_ARCHITECTURE["match_threshold"]
    bench.anchor_labeler = AnchorLabeler(bench.anchors, net.config.num_classes, match_threshold=threshold)

    def batch_loss(index: torch.Tensor) -> torch.Tensor:
        images, boxes, label_ids = batch_targets(data, index, generator)
        yxyx = [b[:, [1, 0, 3, 2]] for b in boxes]
        target = {"bbox": yxyx, "cls": [(l + 1).float() for l in label_ids]}  # effdet's classes are 1-based
        return bench(images, target)["loss"]

    bench.train()
    seconds = _fit(net, len(data), epochs, batch_size, lr, generator, batch_loss, progress, "efficientdet")
    net.eval()
    return seconds


TRAINERS = {"efficientdet": train_efficientdet}
