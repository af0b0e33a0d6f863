"""Batches of images with their box lists, for the detectors that train on them
(Faster R-CNN, EfficientDet), with random left-right mirroring."""

from __future__ import annotations

import numpy as np
import torch

from radstream.models.training.families import TrainingSet


def mirrored(x: torch.Tensor, boxes: torch.Tensor, flip: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Image (C, S, S) and its (K, 4) x1, y1, x2, y2 boxes, mirrored left-right when `flip`."""
    if not flip:
        return x, boxes
    size = x.shape[-1]
    boxes = boxes.clone()
    boxes[:, [0, 2]] = size - boxes[:, [2, 0]]
    return x.flip(-1), boxes


def batch_targets(data: TrainingSet, index: torch.Tensor, generator: torch.Generator
                  ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """A batch of images with their boxes and 0-based label ids, randomly mirrored."""
    flips = (torch.rand(len(index), generator=generator) < 0.5).tolist()
    images, boxes, labels = [], [], []
    for i, flip in zip(index.tolist(), flips):
        b = torch.from_numpy(np.asarray(data.boxes[i], dtype=np.float32).reshape(-1, 4))
        image, b = mirrored(torch.from_numpy(data.x[i]), b, flip)
        images.append(image)
        boxes.append(b)
        labels.append(torch.from_numpy(np.asarray(data.box_labels[i], dtype=np.int64).reshape(-1)))
    return torch.stack(images), boxes, labels
