"""Per-model probability calibration: a temperature (or an isotonic table) from the manifest,
applied to classifier probabilities and detection scores before fusion and rules.

Serving only applies a calibration; `radstream models calibrate NAME` fits one
(models/training/calibration.py).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

EPS = 1e-6


def calibrate(p: float, calibration: dict[str, Any] | None) -> float:
    """The calibrated probability; identity when the manifest has no calibration."""
    if not calibration:
        return float(p)
    method = calibration.get("method")
    if method == "temperature":
        q = min(max(float(p), EPS), 1 - EPS)
        return 1.0 / (1.0 + math.exp(-math.log(q / (1 - q)) / float(calibration["temperature"])))
    if method == "isotonic":
        return float(np.interp(p, calibration["x"], calibration["y"]))
    raise ValueError(f"unknown calibration method {method!r} (temperature or isotonic)")
