"""The robust intensity scale made from a pixel blob's stored integers, bit for bit.

`profile.robust_scale` finds two percentiles of the full-size float32 model frame (numpy
partitions a copy of all 3.6 M pixels of a CR) and then scales every pixel in float64. An
8- or 16-bit blob (D-034) holds at most 65536 distinct values, and the model frame is a
function of the stored value alone (`pixels.model_frame`), so:

- the frame's sorted values are the distinct frame values, each repeated by its stored value's
  count: a histogram of the stored values gives every order statistic, and the percentiles are
  numpy's own interpolation of the same two order statistics;
- the scaled image is a table over the stored values (each distinct value made into its frame
  value and scaled by the same float operations, once), looked up per pixel.

Same operations on the same values, so the result is identical to
`robust_scale(model_frame(stored, transform))` (tests/unit/models/test_intensity.py; D-055).
"""

from __future__ import annotations

import cv2
import numpy as np

from radstream.domain.dicom.pixels import PixelTransform, model_frame
from radstream.models.profile import ROBUST_PERCENTILES, scale_to_window

_UNSIGNED = {1: np.uint8, 2: np.uint16}
_CV2_EXACT_COUNTS = 1 << 24  # cv2.calcHist counts in float32: exact below 2**24 per bin


def robust_scale_stored(stored: np.ndarray, transform: PixelTransform | None) -> np.ndarray | None:
    """`robust_scale(model_frame(stored, transform))` without the full-size frame, or None when
    the blob is not 2-D 8- or 16-bit integers (then the caller takes the general path)."""
    data = np.asarray(stored)
    if data.ndim != 2 or data.dtype.kind not in "iu" or data.dtype.itemsize not in _UNSIGNED or data.size == 0:
        return None
    if not data.dtype.isnative:  # a big-endian blob: the same values, in this machine's order
        data = data.astype(data.dtype.newbyteorder("="))
    bins = 1 << (8 * data.dtype.itemsize)
    codes = np.ascontiguousarray(data).view(_UNSIGNED[data.dtype.itemsize])  # bin = the bits of the value
    frame_values = model_frame(np.arange(bins, dtype=codes.dtype).view(data.dtype), transform)
    low, high = frame_percentiles(frame_values, stored_histogram(codes, bins), data.size)
    return np.take(scale_to_window(frame_values, low, high), codes)


def stored_histogram(codes: np.ndarray, bins: int) -> np.ndarray:
    """How many pixels hold each unsigned code, as int64 (OpenCV's histogram where its float32
    counts are exact, numpy's bincount otherwise)."""
    if codes.size < _CV2_EXACT_COUNTS:
        counts = cv2.calcHist([codes], [0], None, [bins], [0, bins])
        return counts.ravel().astype(np.int64)
    return np.bincount(codes.ravel(), minlength=bins).astype(np.int64)


def frame_percentiles(values: np.ndarray, counts: np.ndarray, n: int) -> tuple[np.float64, np.float64]:
    """`np.percentile(frame, ROBUST_PERCENTILES)` of a frame of `n` pixels where `counts[i]`
    pixels hold the float32 value `values[i]`: the same indices, order statistics and
    interpolation as numpy's linear method (numpy/lib/_function_base_impl.py `_quantile`)."""
    present = counts > 0
    distinct = values[present]
    order = np.argsort(distinct, kind="stable")
    sorted_values = distinct[order]
    ends = np.cumsum(counts[present][order])  # ends[j]: one past the last rank holding sorted_values[j]
    virtual = (n - 1) * np.true_divide(list(ROBUST_PERCENTILES), 100)
    previous = np.floor(virtual)
    following = previous + 1
    last = virtual >= n - 1
    previous[last] = following[last] = n - 1
    gamma = virtual - np.where(last, -1, previous)  # numpy's gamma, taken against its index -1 there
    below = sorted_values[np.searchsorted(ends, previous.astype(np.intp), side="right")]
    above = sorted_values[np.searchsorted(ends, following.astype(np.intp), side="right")]
    difference = above - below
    result = np.add(below, difference * gamma)
    np.subtract(above, difference * (1 - gamma), out=result, where=gamma >= 0.5, casting="unsafe", dtype=np.float64)
    return result[0], result[1]
