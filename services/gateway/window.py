"""Window/level from the full-range pixels: the gateway windows decode's float32 pixel blob itself.

The display PNG decode makes is already windowed (the DICOM VOI LUT) to 8 bits, so a
radiologist could not re-window it. The pixel blob keeps the full range: the stored values
with the event's `pixel_transform` (rescale, MONOCHROME1 inversion), or the float32 model frame
(D-034). A browser cannot window a 16-bit PNG either (canvas reads 8 bits), so the gateway
applies the window to the model frame: `?center=C&width=W` on the image route. What it serves
is a PNG it encoded from an array it parsed: the blob is read by its digest from the derived
area only, hash-verified, parsed as a plain `.npy` (no pickle), and must be the 2-D array of the
record's shape, in a stored integer dtype of at most 16 bits with a transform, or float32
without one; anything else is a 404, like a display blob that is not a PNG (D-042).
"""

from __future__ import annotations

import io
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping

import cv2
import numpy as np

from radstream.domain.dicom.pixels import PixelTransform, apply_windowing, model_frame

MAX_ABS_VALUE = 1e7  # far beyond any Modality LUT output; refuses inf, nan and nonsense
CACHE_BYTES = 256 << 20  # parsed arrays kept for the next window of the same image (a slider drag)


class WindowError(ValueError):
    """A window query that cannot be applied (a one-line 400)."""


def parse_window(query: Mapping[str, str]) -> tuple[float, float] | None:
    """(center, width) from `?center=&width=`, None when neither is given."""
    center, width = query.get("center"), query.get("width")
    if center is None and width is None:
        return None
    if center is None or width is None:
        raise WindowError("give both center and width, or neither")
    try:
        c, w = float(center), float(width)
    except ValueError:
        raise WindowError("center and width must be numbers") from None
    if not (math.isfinite(c) and math.isfinite(w)) or abs(c) > MAX_ABS_VALUE or not 0 < w <= 2 * MAX_ABS_VALUE:
        raise WindowError(f"center must lie within ±{MAX_ABS_VALUE:g} and width in (0, {2 * MAX_ABS_VALUE:g}]")
    return c, w


def load_pixels(data: bytes, shape: list[int], transform: dict | None) -> np.ndarray:
    """decode's float32 model frame from its pixel blob and the event's `pixel_transform`;
    ValueError unless the blob is a 2-D `.npy` of `shape`, stored integers (at most 16 bits)
    with a finite transform, or float32 without one."""
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise ValueError("not a .npy array") from None
    if not isinstance(arr, np.ndarray) or arr.ndim != 2 or list(arr.shape) != list(shape):
        raise ValueError("not a 2-D pixel array of the recorded shape")
    if transform is None:
        if arr.dtype != np.float32:
            raise ValueError("a pixel blob without a pixel_transform must be float32")
        return arr
    if arr.dtype.kind not in "iu" or arr.dtype.itemsize > 2:
        raise ValueError("a pixel blob with a pixel_transform must hold stored integers of at most 16 bits")
    try:
        parsed = PixelTransform.from_record(transform)
    except (KeyError, TypeError, ValueError):
        raise ValueError("not a pixel_transform") from None
    values = [parsed.rescale_slope, parsed.rescale_intercept, parsed.invert_about or 0.0]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        raise ValueError("a pixel_transform with a value that is not a finite number")
    return model_frame(arr, parsed)


def windowed_png(pixels: np.ndarray, center: float, width: float) -> bytes:
    """The pixels through a linear window (PS3.3 C.11.2.1.3, LINEAR_EXACT) to 8 bits, as PNG."""
    y = apply_windowing(pixels, center, width, "LINEAR_EXACT", (0, 255))
    ok, buf = cv2.imencode(".png", np.rint(y).astype(np.uint8))
    if not ok:  # pragma: no cover - cv2 encodes any 2-D uint8 array
        raise ValueError("the windowed image could not be encoded")
    return buf.tobytes()


def pixel_range(pixels: np.ndarray) -> dict[str, float]:
    """The values present (min, max) and the 1st and 99th percentiles, a window that ignores outliers."""
    sample = pixels[:: max(1, pixels.shape[0] // 512), :: max(1, pixels.shape[1] // 512)]
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        return {"min": 0.0, "max": 0.0, "p1": 0.0, "p99": 0.0}
    p1, p99 = np.percentile(finite, [1, 99])
    return {"min": float(np.nanmin(pixels)), "max": float(np.nanmax(pixels)), "p1": float(p1), "p99": float(p99)}


class PixelCache:
    """Model frames by (blob sha256, transform), least recently used evicted past `max_bytes`."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._arrays: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # filled from executor threads

    @staticmethod
    def key(sha256: str, transform: dict | None) -> str:
        return f"{sha256}:{sorted((transform or {}).items())}"

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            arr = self._arrays.get(key)
            if arr is not None:
                self._arrays.move_to_end(key)
            return arr

    def put(self, key: str, arr: np.ndarray) -> None:
        with self._lock:
            self._arrays[key] = arr
            self._arrays.move_to_end(key)
            while len(self._arrays) > 1 and sum(a.nbytes for a in self._arrays.values()) > self.max_bytes:
                self._arrays.popitem(last=False)
