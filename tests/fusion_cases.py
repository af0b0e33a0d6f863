"""Random fusion inputs shared by the WBF, NMW and Soft-NMS tests against ensemble-boxes."""

from __future__ import annotations

import numpy as np

from radstream.domain.fusion import ModelBoxes


def random_fusion_case(seed: int) -> tuple[list[ModelBoxes], tuple[list, list, list], list[float]]:
    """Up to three models' boxes around four centres, two labels, random weights: our inputs,
    the reference's (boxes, scores, labels) lists per model, and the weights."""
    rng = np.random.default_rng(seed)
    n_models = int(rng.integers(1, 4))
    weights = [float(w) for w in rng.uniform(0.5, 2.0, n_models)]
    inputs, ref = [], ([], [], [])
    centers = rng.uniform(0.2, 0.8, (4, 2))
    for m in range(n_models):
        k = int(rng.integers(1, 8))
        c = centers[rng.integers(0, 4, k)] + rng.normal(0, 0.02, (k, 2))
        half = rng.uniform(0.03, 0.08, (k, 2))
        boxes = np.clip(np.concatenate([c - half, c + half], axis=1), 0, 1)
        scores = rng.uniform(0.05, 1.0, k)
        labels = rng.integers(0, 2, k)
        inputs.append(ModelBoxes(f"m{m}", boxes.tolist(), scores.tolist(), [f"l{v}" for v in labels], weights[m]))
        for out, values in zip(ref, (boxes.tolist(), scores.tolist(), labels.tolist())):
            out.append(values)
    return inputs, ref, weights
