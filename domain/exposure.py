"""Exposure statistics of one decoded frame, for drift monitoring.

A vendor's exposure scale, a detector's gain or a new processing chain moves these long
before anyone notices it in a finding. They are aggregates over the full-range pixels
(after the modality LUT), on a 4x4 subsample: percentiles over a few hundred thousand pixels
tell the same story as over millions, at a sixteenth of the cost. No pixel leaves with them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from radstream.domain.dicom.pixels import PixelTransform, model_frame

SUBSAMPLE = 4


def exposure_statistics(stored: np.ndarray, transform: PixelTransform | None = None) -> dict[str, Any]:
    """The ImageStatistics record (schemas/*.avsc) of one frame, before any profile adds to it:
    of the model frame (the stored values through `transform`, the modality LUT and MONOCHROME1)."""
    data = model_frame(np.asarray(stored)[::SUBSAMPLE, ::SUBSAMPLE], transform).astype(np.float64)
    if data.size == 0 or not np.isfinite(data).all():
        data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0) if data.size else np.zeros(1)
    p01, p99 = np.percentile(data, [1.0, 99.0])
    return {"pixel_mean": float(data.mean()), "pixel_std": float(data.std()), "pixel_p01": float(p01),
            "pixel_p99": float(p99), "profiles": []}


def profile_statistics(profile: str, tensor: np.ndarray, mean: float, std: float) -> dict[str, Any]:
    """A profile's [0, 1] image before normalisation, its mean and std (the ProfileStatistics
    record), read back from the model tensor (x - mean) / std of that profile's `mean` and `std`."""
    data = np.asarray(tensor, dtype=np.float64)[0]  # the channels are copies
    return {"profile": profile, "mean": float(data.mean() * std + mean), "std": float(data.std() * std)}
