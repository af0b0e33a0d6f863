"""Deterministic CPU training loops for the demo networks."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from radstream.models.training.centernet_loss import centernet_loss, encode_targets, heatmap_focal_loss
from radstream.models.nets import TinyClassifier, TinyDetector

Progress = Callable[[str], None]


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def _flip_lr(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Boolean (B,) mask of images to mirror; chest anatomy is roughly left-right symmetric."""
    return torch.rand(x.shape[0], generator=generator) < 0.5


def _optimiser(net: nn.Module, lr: float, steps: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.15)
    return optimiser, schedule


def _fit(net: nn.Module, n: int, epochs: int, batch_size: int, lr: float, generator: torch.Generator,
         batch_loss: Callable[[torch.Tensor], torch.Tensor], progress: Progress, name: str) -> float:
    """The one training loop: shuffled batches, AdamW with its schedule, a progress line per
    epoch. `batch_loss(index)` builds one batch's loss (augmentation included). Returns seconds."""
    optimiser, schedule = _optimiser(net, lr, epochs * -(-n // batch_size))
    started = time.perf_counter()
    net.train()
    for epoch in range(epochs):
        total = 0.0
        for index in _batches(n, batch_size, generator):
            loss = batch_loss(index)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(index)
        progress(f"{name} epoch {epoch + 1}/{epochs} loss {total / n:.4f} ({time.perf_counter() - started:.1f}s)")
    net.eval()
    return time.perf_counter() - started


def train_classifier(
    net: TinyClassifier, x: np.ndarray, boxes: list[np.ndarray], epochs: int, progress: Progress,
    batch_size: int = 32, lr: float = 3e-3, seed: int = 0,
) -> float:
    """Image-level BCE plus a CenterNet focal loss on the logit map (deep supervision).

    Single label: an image is positive when it has any box. Returns wall seconds.
    """
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.from_numpy(x)
    targets = torch.tensor([[float(len(b) > 0)] for b in boxes])
    dense = torch.from_numpy(np.stack([encode_targets(b, [0] * len(b), 1, x.shape[-1], net.stride)[0] for b in boxes]))

    def batch_loss(index: torch.Tensor) -> torch.Tensor:
        batch, d = inputs[index], dense[index]
        flip = _flip_lr(batch, generator)[:, None, None, None]
        batch, d = (torch.where(flip, a.flip(-1), a) for a in (batch, d))
        maps = net.logit_map(batch)
        image_loss = F.binary_cross_entropy_with_logits(net.pool(maps), targets[index])
        return image_loss + heatmap_focal_loss(maps, d)

    return _fit(net, len(inputs), epochs, batch_size, lr, generator, batch_loss, progress, "classifier")


def _mirror_targets(heat: torch.Tensor, box: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Targets of a left-right mirrored image: flip the maps and the x offset."""
    heat, box, mask = heat.flip(-1), box.flip(-1), mask.flip(-1)
    box = box.clone()
    box[:, 2] = torch.where(mask > 0, 1.0 - box[:, 2], box[:, 2])
    return heat, box, mask


def train_detector(
    net: TinyDetector, x: np.ndarray, boxes: list[np.ndarray], epochs: int, progress: Progress,
    batch_size: int = 32, lr: float = 3e-3, seed: int = 0,
) -> float:
    """CenterNet focal + L1 loss on tensor-pixel boxes (single label); returns wall seconds."""
    size, stride = x.shape[-1], net.stride
    encoded = [encode_targets(b, [0] * len(b), 1, size, stride) for b in boxes]
    heat = torch.from_numpy(np.stack([e[0] for e in encoded]))
    box = torch.from_numpy(np.stack([e[1] for e in encoded]))
    mask = torch.from_numpy(np.stack([e[2] for e in encoded]))
    inputs = torch.from_numpy(x)
    generator = torch.Generator().manual_seed(seed)

    def batch_loss(index: torch.Tensor) -> torch.Tensor:
        batch, h, b, m = inputs[index], heat[index], box[index], mask[index]
        flip = _flip_lr(batch, generator)
        if flip.any():
            fh, fb, fm = _mirror_targets(h, b, m)
            sel = flip[:, None, None, None]
            batch = torch.where(sel, batch.flip(-1), batch)
            h, b, m = torch.where(sel, fh, h), torch.where(sel, fb, b), torch.where(flip[:, None, None], fm, m)
        heat_logits, box_pred = net(batch)
        return centernet_loss(heat_logits, box_pred, h, b, m)

    return _fit(net, len(inputs), epochs, batch_size, lr, generator, batch_loss, progress, "detector")


def train_multilabel(
    net: TinyClassifier, x: np.ndarray, targets: np.ndarray, epochs: int, progress: Progress,
    batch_size: int = 32, lr: float = 3e-3, seed: int = 0,
) -> float:
    """Image-level BCE over independent labels (the QC model); returns wall seconds.

    No dense supervision: acquisition defects are properties of the whole image, not places in it.
    """
    generator = torch.Generator().manual_seed(seed)
    inputs, labels = torch.from_numpy(x), torch.from_numpy(targets.astype(np.float32))

    def batch_loss(index: torch.Tensor) -> torch.Tensor:
        batch = inputs[index]
        flip = _flip_lr(batch, generator)[:, None, None, None]
        batch = torch.where(flip, batch.flip(-1), batch)
        return F.binary_cross_entropy_with_logits(net(batch), labels[index])

    return _fit(net, len(inputs), epochs, batch_size, lr, generator, batch_loss, progress, "qc")
