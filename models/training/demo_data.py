"""Phantom data sets rendered through input profiles, for training and evaluating the demo models."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radstream.services.synthetic.phantoms import Phantom, make_phantom
from radstream.models.profile import InputProfile, normalise, prepare_unit_image


@dataclass
class RenderedSet:
    """Phantoms after one profile's scaling/CLAHE/resize, before normalisation."""

    unit_images: np.ndarray  # float32 (N, S, S) in [0, 1]-ish
    tensor_boxes: list[np.ndarray]  # per image (K, 4) in tensor pixels
    has_finding: np.ndarray  # bool (N,)

    def mean_std(self) -> tuple[float, float]:
        """The set's own intensity statistics: what the profile normalises with."""
        return float(self.unit_images.mean(dtype=np.float64)), float(self.unit_images.std(dtype=np.float64))

    def normalised(self, profile: InputProfile) -> np.ndarray:
        """(N, C, S, S) float32 tensors, exactly as apply_profile would produce them."""
        return np.stack([normalise(u, profile) for u in self.unit_images])


def random_shape(rng: np.random.Generator) -> tuple[int, int]:
    """Mostly square, sometimes portrait or landscape, so letterboxing is learned too."""
    side = int(rng.integers(384, 513))
    if rng.random() < 0.6:
        return side, side
    other = int(side * rng.uniform(0.75, 0.95))
    return (side, other) if rng.random() < 0.5 else (other, side)


def generate_phantoms(rng: np.random.Generator, n: int) -> list[Phantom]:
    return [make_phantom(rng, random_shape(rng)) for _ in range(n)]


def render_sets(
    rng: np.random.Generator, n: int, profiles: list[InputProfile]
) -> list[RenderedSet]:
    """Generate n phantoms once and render each through every profile (raw images are dropped)."""
    units: list[list[np.ndarray]] = [[] for _ in profiles]
    boxes: list[list[np.ndarray]] = [[] for _ in profiles]
    has_finding = np.zeros(n, dtype=bool)
    for i in range(n):
        phantom = make_phantom(rng, random_shape(rng))
        has_finding[i] = len(phantom.boxes) > 0
        for k, profile in enumerate(profiles):
            unit, geometry = prepare_unit_image(phantom.image, profile)
            units[k].append(unit)
            boxes[k].append(geometry.to_tensor(phantom.boxes))
    return [RenderedSet(np.stack(u), b, has_finding.copy()) for u, b in zip(units, boxes)]

