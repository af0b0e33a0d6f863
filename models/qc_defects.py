"""Acquisition defects applied to phantoms, so a pixel-QC model has labelled examples.

Each defect imitates what the detector would record, in detector units (0..4095,
bright = dense), before any display processing:

- underexposed: too few photons. The signal occupies a small slice of the
  detector range, quantum mottle (spatially correlated noise) is large next to it,
  and the densest regions receive nothing and clip at the white end.
- overexposed: too many photons. The least dense regions (air, lungs) saturate
  and burn out to a flat black, and what is left of the anatomy is compressed.
- rotated: the patient (or the cassette) turned by 15 to 180 degrees either way,
  sometimes with the uncovered corners showing, sometimes cropped past them.

Every image gets the harmless variation real ones have (a few degrees of tilt,
tighter collimation, some fine texture, another tone curve), so that "brighter or
rougher than the phantom average" is not what the model learns.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .phantoms import DETECTOR_MAX_VALUE, make_phantom

UNDEREXPOSED = "underexposed"
OVEREXPOSED = "overexposed"
ROTATED = "rotated"
QC_LABELS = (UNDEREXPOSED, OVEREXPOSED, ROTATED)

MIN_ROTATION_DEG = 15.0
MAX_ROTATION_DEG = 180.0
CLEAN_TILT_DEG = 6.0


@dataclass(frozen=True)
class QcSample:
    image: np.ndarray  # float32 (H, W) detector units, bright = dense
    labels: frozenset[str]


def _correlated_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Unit-variance Gaussian noise blurred by the detector's point spread."""
    noise = rng.normal(0.0, 1.0, size=shape).astype(np.float32)
    if sigma_px > 0:
        noise = cv2.GaussianBlur(noise, (0, 0), sigma_px)
        noise /= max(float(noise.std()), 1e-6)
    return noise


def underexpose(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    low, high = np.percentile(image, [1.0, 99.0])
    span = max(float(high - low), 1.0)
    compressed = rng.uniform(0.03, 0.12) * DETECTOR_MAX_VALUE
    out = rng.uniform(0.55, 0.8) * DETECTOR_MAX_VALUE + (image - low) / span * compressed
    sigma = compressed * rng.uniform(0.1, 0.3)
    out += sigma * _correlated_noise(rng, image.shape, rng.uniform(0.8, 2.0))
    white = np.percentile(out, rng.uniform(75.0, 95.0))  # dense regions got no photons
    return np.clip(out, 0.0, white).astype(np.float32)


def overexpose(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    black = np.percentile(image, rng.uniform(35.0, 65.0))  # air and lungs burn out
    high = float(np.percentile(image, 99.5))
    kept = np.clip(image - black, 0.0, None) / max(high - black, 1.0)
    out = rng.uniform(20.0, 120.0) + kept * rng.uniform(0.15, 0.45) * DETECTOR_MAX_VALUE
    out += rng.uniform(2.0, 10.0) * _correlated_noise(rng, image.shape, 0.8) * (kept > 0)
    return np.clip(out, 0.0, DETECTOR_MAX_VALUE).astype(np.float32)


def rotate(image: np.ndarray, angle_deg: float, crop_corners: bool, fill: float) -> np.ndarray:
    """Rotate about the centre; with crop_corners, zoom until no uncovered corner shows."""
    h, w = image.shape
    scale = 1.0
    if crop_corners:
        a = np.radians(abs(angle_deg))
        scale = max((w * np.cos(a) + h * np.sin(a)) / w, (w * np.sin(a) + h * np.cos(a)) / h)
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, scale)
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=float(fill))


def _collimate(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Keep a central part (tighter field of view), as real chest films often fill the frame."""
    h, w = image.shape
    keep = rng.uniform(0.6, 1.0)
    ch, cw = int(h * keep), int(w * keep)
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    return image[y0 : y0 + ch, x0 : x0 + cw]


def _tone(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A tone curve that moves the image's mean brightness to a random level in its own range.

    Applied whatever the labels, so that overall brightness tells the model nothing: a
    defect must be recognised by clipping, flat burn-out, noise or geometry.
    """
    low, high = np.percentile(image, [0.5, 99.5])
    span = max(float(high - low), 1.0)
    unit = np.clip((image - low) / span, 0.0, 1.0)
    current = float(np.clip(unit.mean(), 0.02, 0.98))
    gamma = float(np.clip(np.log(rng.uniform(0.2, 0.8)) / np.log(current), 0.25, 4.0))
    return (low + unit**gamma * span).astype(np.float32)


def _texture(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fine structure and normal-dose mottle, a little rougher than the smooth phantoms."""
    low, high = np.percentile(image, [0.5, 99.5])
    sigma = rng.uniform(0.0, 0.035) * max(float(high - low), 1.0)
    return image + sigma * _correlated_noise(rng, image.shape, rng.uniform(0.7, 2.5))


def make_qc_sample(rng: np.random.Generator, shape: tuple[int, int]) -> QcSample:
    """One phantom with independently drawn defects (about 40 % clean)."""
    image = make_phantom(rng, shape).image
    labels: set[str] = set()
    fill = float(np.percentile(image, 1.0))  # air: what an uncovered corner records
    if rng.random() < 0.3:
        angle = rng.uniform(MIN_ROTATION_DEG, MAX_ROTATION_DEG) * rng.choice([-1.0, 1.0])
        image = rotate(image, angle, crop_corners=rng.random() < 0.5, fill=fill)
        labels.add(ROTATED)
    elif rng.random() < 0.7:
        image = rotate(image, rng.uniform(-CLEAN_TILT_DEG, CLEAN_TILT_DEG), crop_corners=True, fill=fill)
    if rng.random() < 0.5:
        image = _collimate(image, rng)
    image = _texture(image, rng)
    exposure = rng.random()
    if exposure < 0.2:
        image = underexpose(image, rng)
        labels.add(UNDEREXPOSED)
    elif exposure < 0.4:
        image = overexpose(image, rng)
        labels.add(OVEREXPOSED)
    if rng.random() < 0.8:
        image = _tone(image, rng)
    return QcSample(np.ascontiguousarray(image, dtype=np.float32), frozenset(labels))
