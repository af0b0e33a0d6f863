"""Synthetic chest-radiograph phantoms with known nodules, for training and tests.

Real annotated radiographs cannot ship with the repository, so the demo models
learn from these: anatomy-like clutter (body, lungs, ribs, spine, heart) that a
detector must learn to ignore, plus nodule-like blobs with exact boxes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

NODULE = "nodule"
DETECTOR_MAX_VALUE = 4095.0  # 12-bit detector units


@dataclass(frozen=True)
class Phantom:
    image: np.ndarray  # float32 (H, W), 0..4095, bright = dense
    boxes: np.ndarray  # float32 (N, 4) x1, y1, x2, y2 in pixels
    labels: list[str]


def _ellipse(ys: np.ndarray, xs: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    """Normalised squared radius of an axis-aligned ellipse (< 1 inside)."""
    return ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2


def _lung_fields(rng: np.random.Generator, h: int, w: int) -> list[tuple[float, float, float, float]]:
    """(cy, cx, ry, rx) of the two lung ellipses, the right one a little larger."""
    cy = h * rng.uniform(0.44, 0.50)
    ry = h * rng.uniform(0.27, 0.32)
    offset = w * rng.uniform(0.17, 0.21)
    rx = w * rng.uniform(0.13, 0.16)
    return [(cy, w / 2 - offset, ry, rx * 1.05), (cy, w / 2 + offset, ry, rx)]


def _draw_anatomy(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Density map (arbitrary units, ~0..1.3) and a boolean lung mask."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    density = np.full((h, w), 0.05, dtype=np.float32)  # air around the patient
    body = _ellipse(ys, xs, h * 0.55, w / 2, h * rng.uniform(0.55, 0.65), w * rng.uniform(0.42, 0.48))
    density += 0.45 * np.clip(1.2 - body, 0.0, 1.0) ** 0.3
    lungs = np.zeros((h, w), dtype=bool)
    for cy, cx, ry, rx in _lung_fields(rng, h, w):
        inside = _ellipse(ys, xs, cy, cx, ry, rx)
        lungs |= inside < 1.0
        density -= 0.28 * np.clip(1.0 - inside, 0.0, 1.0) ** 0.25
    heart = _ellipse(ys, xs, h * 0.62, w * rng.uniform(0.52, 0.56), h * 0.14, w * 0.14)
    density += 0.25 * np.clip(1.0 - heart, 0.0, 1.0) ** 0.4
    spine = np.exp(-(((xs - w / 2) / (w * 0.035)) ** 2)) * (ys > h * 0.1)
    density += 0.35 * spine
    n_ribs = int(rng.integers(8, 11))
    thickness = h * rng.uniform(0.008, 0.013)
    for side in (-1.0, 1.0):
        for i in range(n_ribs):
            y0 = h * (0.2 + 0.055 * i) + rng.normal(0, h * 0.005)
            lateral = np.abs(xs[0] - w / 2) / (w * 0.4)  # 0 at the spine, 1 laterally
            curve = y0 + h * 0.08 * lateral**1.6 + h * 0.02 * rng.normal()
            on_side = (np.sign(xs[0] - w / 2) == side) & (lateral < 1.05)
            dist = np.abs(ys - curve[None, :])
            rib = np.exp(-((dist / thickness) ** 2)) * on_side[None, :]
            density += 0.12 * rib
    return density, lungs


def _place_nodules(
    rng: np.random.Generator, density: np.ndarray, lungs: np.ndarray, count: int
) -> np.ndarray:
    """Add `count` soft elliptic blobs to `density` in place; return their boxes."""
    h, w = density.shape
    scale = min(h, w) / 512.0
    lung_points = np.argwhere(lungs)
    boxes = []
    for _ in range(count):
        if rng.random() < 0.9 and len(lung_points):
            cy, cx = lung_points[rng.integers(len(lung_points))].astype(np.float64)
        else:
            cy, cx = rng.uniform(0.2 * h, 0.85 * h), rng.uniform(0.15 * w, 0.85 * w)
        diameter = rng.uniform(8.0, 40.0) * scale
        aspect = rng.uniform(0.75, 1.33)
        rx, ry = diameter / 2 * aspect**0.5, diameter / 2 / aspect**0.5
        angle = rng.uniform(0, np.pi)
        half = int(np.ceil(max(rx, ry))) + 2
        y0, y1 = max(0, int(cy) - half), min(h, int(cy) + half + 1)
        x0, x1 = max(0, int(cx) - half), min(w, int(cx) + half + 1)
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        c, s = np.cos(angle), np.sin(angle)
        u, v = (xs - cx) * c + (ys - cy) * s, -(xs - cx) * s + (ys - cy) * c
        r2 = (u / rx) ** 2 + (v / ry) ** 2
        contrast = rng.uniform(0.08, 0.3)
        density[y0:y1, x0:x1] += contrast * np.clip(1.0 - r2, 0.0, 1.0) ** 0.6
        ex = np.sqrt((rx * c) ** 2 + (ry * s) ** 2)  # half-extents of the rotated ellipse
        ey = np.sqrt((rx * s) ** 2 + (ry * c) ** 2)
        boxes.append([max(0.0, cx - ex), max(0.0, cy - ey), min(w, cx + ex), min(h, cy + ey)])
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def make_phantom(
    rng: np.random.Generator,
    size: int | tuple[int, int] = 512,
    n_lesions: int | None = None,
) -> Phantom:
    """One chest-like phantom; `size` is a side or (height, width).

    With `n_lesions=None`, about half the phantoms are normal and the rest have
    one to three nodules.
    """
    h, w = (size, size) if isinstance(size, int) else size
    if n_lesions is None:
        n_lesions = 0 if rng.random() < 0.5 else int(rng.integers(1, 4))
    density, lungs = _draw_anatomy(rng, h, w)
    boxes = _place_nodules(rng, density, lungs, n_lesions)
    sigma = max(0.6, min(h, w) / 512.0 * rng.uniform(0.8, 1.6))
    density = cv2.GaussianBlur(density, (0, 0), sigma)
    gain = rng.uniform(1800.0, 3000.0)  # exposure / detector gain
    offset = rng.uniform(50.0, 400.0)
    image = offset + gain * density
    image += rng.normal(0.0, rng.uniform(10.0, 40.0), size=(h, w)).astype(np.float32)
    image = np.clip(image, 0.0, DETECTOR_MAX_VALUE).astype(np.float32)
    return Phantom(image=image, boxes=boxes, labels=[NODULE] * len(boxes))
