"""Per-image box lists, shared by the detectors that train and predict on them
(Faster R-CNN, EfficientDet): batching with left-right mirroring, and padded fixed-size
output tensors with their one decoder.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..outputs import Detection, ModelOutput
from . import TrainingSet


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


def pad_detections(per_image: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], k: int
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(boxes (K,4), scores (K,), labels (K,)) per image -> fixed (N,k,4), (N,k), (N,k) tensors,
    padded with score 0 so that a decoder can treat every backend's output alike."""
    n = len(per_image)
    boxes = torch.zeros(n, k, 4)
    scores = torch.zeros(n, k)
    labels = torch.zeros(n, k)
    for i, (b, s, l) in enumerate(per_image):
        m = min(k, len(s))
        boxes[i, :m], scores[i, :m], labels[i, :m] = b[:m], s[:m], l[:m].float()
    return boxes, scores, labels


def decode_padded(raw: Sequence[torch.Tensor], labels: Sequence[str], score_floor: float,
                  top_k: int) -> list[ModelOutput]:
    """raw = (boxes (N,K,4) tensor pixels, scores (N,K), 0-based label ids (N,K)).

    Image-level score per label = its best box (0.0 with none), as for every detector family.
    """
    boxes, scores, label_ids = (t.detach().float().cpu() for t in raw[:3])
    outputs = []
    for b, s, l in zip(boxes, scores, label_ids):
        order = torch.argsort(s, descending=True)[:top_k]
        found = [Detection(labels[int(l[j])], float(s[j]), tuple(float(v) for v in b[j]))
                 for j in order.tolist() if s[j] >= score_floor and s[j] > 0]
        best = {label: 0.0 for label in labels}
        for d in found:
            best[d.label] = max(best[d.label], d.score)
        outputs.append(ModelOutput(found, best))
    return outputs
