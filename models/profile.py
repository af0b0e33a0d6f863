"""The one image-preprocessing profile shared by training and inference.

A model only sees pixels through `apply_profile`, and the profile it was trained
with travels in its manifest, so training and serving cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np

Interpolation = Literal["lanczos", "bilinear"]

_CV2_INTERPOLATION: dict[str, int] = {
    "lanczos": cv2.INTER_LANCZOS4,
    "bilinear": cv2.INTER_LINEAR,
}

# Robust window: ignore the darkest/brightest 0.5 % (collimator edges, markers).
_LOW_PERCENTILE = 0.5
_HIGH_PERCENTILE = 99.5


@dataclass(frozen=True)
class ClaheSettings:
    """Contrast-limited adaptive histogram equalisation, as in cv2.createCLAHE."""

    enabled: bool = False
    clip_limit: float = 2.0
    tile_grid: int = 8


@dataclass(frozen=True)
class InputProfile:
    """How an image becomes a model tensor; mean/std are the training set's own."""

    size: int = 256
    letterbox: bool = True
    interpolation: Interpolation = "lanczos"
    clahe: ClaheSettings = field(default_factory=ClaheSettings)
    mean: float = 0.0
    std: float = 1.0
    channels: int = 1

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ValueError(f"profile size must be positive, got {self.size}")
        if self.interpolation not in _CV2_INTERPOLATION:
            raise ValueError(f"unknown interpolation {self.interpolation!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if not self.std > 0:
            raise ValueError(f"std must be > 0, got {self.std}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputProfile:
        values = dict(data)
        values["clahe"] = ClaheSettings(**values.get("clahe", {}))
        return cls(**values)

    def with_stats(self, mean: float, std: float) -> InputProfile:
        return dataclasses.replace(self, mean=float(mean), std=float(std))

    def hash(self) -> str:
        """16 hex chars identifying the profile; stable across runs and platforms."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Letterbox:
    """The geometry of one resize, so boxes can be mapped between both frames."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    original_height: int
    original_width: int

    def to_tensor(self, boxes: np.ndarray) -> np.ndarray:
        """Map Nx4 x1,y1,x2,y2 boxes from original pixels to tensor pixels."""
        out = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
        out[:, [0, 2]] = out[:, [0, 2]] * self.scale_x + self.pad_x
        out[:, [1, 3]] = out[:, [1, 3]] * self.scale_y + self.pad_y
        return out

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        """Map Nx4 boxes from tensor pixels back to original pixels, clipped."""
        out = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale_x
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale_y
        out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0.0, float(self.original_width))
        out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0.0, float(self.original_height))
        return out


ROBUST_PERCENTILES = (_LOW_PERCENTILE, _HIGH_PERCENTILE)


def robust_window(image: np.ndarray) -> tuple[np.float64, np.float64]:
    """The 0.5th and 99.5th percentiles of a float32 image (numpy's linear method, float64)."""
    low, high = np.percentile(np.asarray(image, dtype=np.float32), list(ROBUST_PERCENTILES))
    return low, high


def scale_to_window(image: np.ndarray, low: np.float64, high: np.float64) -> np.ndarray:
    """Scale a float32 image to [0, 1] between low and high, clipped (zeros if the window is empty).

    Elementwise, so a table of distinct values scaled by it gives the same bits as the image
    (models/intensity.py relies on that)."""
    data = np.asarray(image, dtype=np.float32)
    if high <= low:
        return np.zeros_like(data, dtype=np.float32)
    return np.clip((data - low) / (high - low), 0.0, 1.0).astype(np.float32)


def robust_scale(image: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] between the 0.5th and 99.5th percentiles, clipped."""
    data = np.asarray(image, dtype=np.float32)
    return scale_to_window(data, *robust_window(data))


def apply_clahe(unit_image: np.ndarray, settings: ClaheSettings) -> np.ndarray:
    """CLAHE on a 16-bit copy of a [0, 1] image, so no 8-bit banding is added."""
    if not settings.enabled:
        return unit_image
    as_u16 = np.round(unit_image * 65535.0).astype(np.uint16)
    clahe = cv2.createCLAHE(
        clipLimit=float(settings.clip_limit),
        tileGridSize=(int(settings.tile_grid), int(settings.tile_grid)),
    )
    return clahe.apply(as_u16).astype(np.float32) / 65535.0


def _resize(unit_image: np.ndarray, profile: InputProfile) -> tuple[np.ndarray, Letterbox]:
    height, width = unit_image.shape
    size = profile.size
    flag = _CV2_INTERPOLATION[profile.interpolation]
    if profile.letterbox:
        scale = size / max(height, width)
        new_w = max(1, min(size, round(width * scale)))
        new_h = max(1, min(size, round(height * scale)))
    else:
        new_w, new_h = size, size
    resized = cv2.resize(unit_image, (new_w, new_h), interpolation=flag)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    canvas = np.zeros((size, size), dtype=np.float32)  # pad with "air" (0)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    geometry = Letterbox(
        scale_x=new_w / width,
        scale_y=new_h / height,
        pad_x=float(pad_x),
        pad_y=float(pad_y),
        original_height=height,
        original_width=width,
    )
    return canvas, geometry


def prepare_unit_image(image: np.ndarray, profile: InputProfile) -> tuple[np.ndarray, Letterbox]:
    """Every step but normalisation: the [0, 1] square the training stats are taken on."""
    data = np.asarray(image)
    if data.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {data.shape}")
    unit = apply_clahe(robust_scale(data), profile.clahe)
    return _resize(unit, profile)


def apply_profile(image: np.ndarray, profile: InputProfile) -> tuple[np.ndarray, Letterbox]:
    """Turn a 2-D image (bright = dense) into a float32 (C, size, size) model tensor."""
    unit, geometry = prepare_unit_image(image, profile)
    return normalise(unit, profile), geometry


PREPROCESS_STEPS = ("robust_scale", "clahe", "resize", "normalise")


def apply_profiles(image: np.ndarray, profiles: list[InputProfile],
                   seconds: dict[str, float] | None = None) -> dict[str, tuple[np.ndarray, Letterbox]]:
    """`apply_profile` for several profiles of one image, each shared step done once.

    The robust scale is the same for every profile, CLAHE the same for every profile with the
    same settings, and the resize the same for every (CLAHE, size, letterbox, interpolation):
    only normalisation (mean, std, channels) is per profile. Same steps, same inputs, so every
    tensor is identical to `apply_profile`'s (tests/unit/models/test_profile.py). `seconds`,
    when given, accumulates each step's time (PREPROCESS_STEPS), for the bench.
    """
    data = np.asarray(image)
    if data.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {data.shape}")
    clock = _StepClock(seconds)
    return apply_profiles_to_unit(clock("robust_scale", robust_scale, data), profiles, seconds)


def apply_profiles_to_unit(scaled: np.ndarray, profiles: list[InputProfile],
                           seconds: dict[str, float] | None = None) -> dict[str, tuple[np.ndarray, Letterbox]]:
    """`apply_profiles` after its robust scale: `scaled` is `robust_scale(image)`, however made
    (the preprocess stage makes it from the stored integers: models/intensity.py)."""
    if scaled.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {scaled.shape}")
    clock = _StepClock(seconds)
    equalised: dict[ClaheSettings, np.ndarray] = {}
    resized: dict[tuple, tuple[np.ndarray, Letterbox]] = {}
    out: dict[str, tuple[np.ndarray, Letterbox]] = {}
    for profile in profiles:
        clahe = profile.clahe if profile.clahe.enabled else ClaheSettings()
        if clahe not in equalised:
            equalised[clahe] = clock("clahe", apply_clahe, scaled, clahe)
        key = (clahe, profile.size, profile.letterbox, profile.interpolation)
        if key not in resized:
            resized[key] = clock("resize", _resize, equalised[clahe], profile)
        unit, geometry = resized[key]
        out[profile.hash()] = clock("normalise", normalise, unit, profile), geometry
    return out


class _StepClock:
    """Calls a step and, when asked to, adds its wall time to `seconds[step]`."""

    def __init__(self, seconds: dict[str, float] | None) -> None:
        self.seconds = seconds

    def __call__(self, step: str, fn, *args):  # type: ignore[no-untyped-def]
        if self.seconds is None:
            return fn(*args)
        started = time.perf_counter()
        result = fn(*args)
        self.seconds[step] = self.seconds.get(step, 0.0) + time.perf_counter() - started
        return result


def normalise(unit_image: np.ndarray, profile: InputProfile) -> np.ndarray:
    """(x - mean) / std with the training set's stats, repeated to the profile's channels."""
    normalised = (unit_image - np.float32(profile.mean)) / np.float32(profile.std)
    tensor = np.repeat(normalised[None, :, :], profile.channels, axis=0)
    return tensor.astype(np.float32, copy=False)
