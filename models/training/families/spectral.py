"""Training the motion-spectrum family: only its logistic head learns; the features are fixed."""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from radstream.models.families.spectral import MotionSpectrum
from radstream.models.training.families import Progress, TrainingSet


def train_head(net: MotionSpectrum, data: TrainingSet, steps: int, progress: Progress,
               seed: int = 0, lr: float = 1e-2, weight_decay: float = 1e-3, chunk: int = 64) -> float:
    """Fit the standardisation on the training features, then the head by full-batch Adam on BCE."""
    started = time.perf_counter()
    net.eval()
    with torch.no_grad():
        feats = torch.cat([net.features(torch.from_numpy(data.x[i:i + chunk]))
                           for i in range(0, len(data), chunk)])
        net.feature_mean.copy_(feats.mean(dim=0))
        net.feature_scale.copy_(feats.std(dim=0) + 1e-6)
        standardised = (feats - net.feature_mean) / net.feature_scale
    progress(f"motion-spectrum: {feats.shape[1]} features from {len(data)} images "
             f"in {time.perf_counter() - started:.1f}s")
    torch.manual_seed(seed)
    net.head.reset_parameters()
    targets = torch.from_numpy(data.targets.astype(np.float32))
    optimiser = torch.optim.Adam(net.head.parameters(), lr=lr, weight_decay=weight_decay)
    for step in range(1, steps + 1):
        optimiser.zero_grad()
        loss = F.binary_cross_entropy_with_logits(net.head(standardised), targets)
        loss.backward()
        optimiser.step()
        if step % max(1, steps // 4) == 0 or step == steps:
            progress(f"motion-spectrum: step {step}/{steps} loss {loss.item():.4f}")
    return time.perf_counter() - started



def train_motion_spectrum(net: nn.Module, data: TrainingSet, epochs: int, progress: Progress, seed: int = 0) -> float:
    """`epochs` counts full-batch steps of the head: the features are computed once."""
    return train_head(net, data, epochs, progress, seed=seed)


TRAINERS = {"motion-spectrum": train_motion_spectrum}
