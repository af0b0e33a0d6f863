"""Pure pixel transforms named after the DICOM standard (PS3.3 C.11, C.7.6.3).

Every function takes an array plus the dataset that describes it and returns a new
array; nothing here reads files, logs or knows about Kafka. The order the decode
stage applies them in is the standard's grayscale pipeline:

    stored values -> Modality LUT -> VOI LUT -> (MONOCHROME1: invert) -> display

`to_bone_bright` replaces the Presentation LUT inversion so that every array that
leaves the decode stage has the same polarity, whatever the modality wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut as _pydicom_apply_color_lut
from pydicom.pixels import apply_modality_lut as _pydicom_apply_modality_lut
from pydicom.valuerep import VR

VOILUTFunction = Literal["LINEAR", "LINEAR_EXACT", "SIGMOID"]
VOI_LUT_FUNCTIONS: tuple[str, ...] = ("LINEAR", "LINEAR_EXACT", "SIGMOID")

# ITU-R BT.601 luma weights: the Y of DICOM's YBR_FULL (PS3.3 C.7.6.3.1.2).
BT601_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

DisplayRange = tuple[float, float]
UINT8_RANGE: DisplayRange = (0.0, 255.0)


def stored_value_range(ds: Dataset) -> tuple[int, int]:
    """The values Bits Stored and Pixel Representation allow, not the values present.

    Used for inversion so that the result does not depend on the image content
    (two encodings of the same image must invert identically).
    """
    bits_stored = int(ds.BitsStored)
    if int(ds.get("PixelRepresentation", 0)) == 1:
        return -(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1
    return 0, (1 << bits_stored) - 1


def correct_unused_bits(stored: np.ndarray, ds: Dataset, present: tuple[int, int]) -> np.ndarray:
    """The stored values with the bits above Bits Stored ignored (PS3.5 8.1.1): sign-extended
    from bit Bits Stored - 1 when Pixel Representation is 1, else cleared, as pydicom's own
    correction (`correct_unused_bits`) does. `present` is the (min, max) of `stored`; when it is
    inside `stored_value_range` (the writer left the unused bits clear, or sign-filled them)
    the correction changes nothing, and `stored` is returned as it is, without a copy."""
    low, high = stored_value_range(ds)
    if low <= present[0] and present[1] <= high:
        return stored
    shift = 8 * stored.dtype.itemsize - int(ds.BitsStored)
    corrected = stored.copy()
    np.left_shift(corrected, shift, out=corrected)
    np.right_shift(corrected, shift, out=corrected)
    return corrected


def apply_modality_lut(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    """Stored values -> modality values (e.g. HU), as float32 (PS3.3 C.11.1).

    Rescale Slope/Intercept or the Modality LUT Sequence, via pydicom; the float32
    cast is ours so that every caller gets one dtype whichever branch applied.
    """
    return np.asarray(_pydicom_apply_modality_lut(arr, ds), dtype=np.float32)


def modality_value_range(ds: Dataset) -> tuple[float, float]:
    """The range of the Modality LUT output over every possible stored value."""
    if ds.get("ModalityLUTSequence"):
        lut = _lut_data(ds.ModalityLUTSequence[0], ds)
        return float(lut.min()), float(lut.max())
    low, high = stored_value_range(ds)
    ends = apply_modality_lut(np.array([low, high], dtype=np.float64), ds)
    return float(ends.min()), float(ends.max())


def pixel_padding_mask(arr: np.ndarray, ds: Dataset) -> np.ndarray | None:
    """True where a stored value is padding (PS3.3 C.7.5.1.1.2), None if none is declared.

    Must be applied to stored values, before the Modality LUT, as the standard
    defines Pixel Padding Value (and Range Limit) in stored-value space.
    """
    if "PixelPaddingValue" not in ds or ds.PixelPaddingValue is None:
        return None
    value = int(ds.PixelPaddingValue)
    limit = ds.get("PixelPaddingRangeLimit")
    if limit is None:
        return arr == value
    low, high = sorted((value, int(limit)))
    return (arr >= low) & (arr <= high)


def apply_windowing(
    arr: np.ndarray,
    center: float,
    width: float,
    function: str = "LINEAR",
    y_range: DisplayRange = UINT8_RANGE,
) -> np.ndarray:
    """Window Center/Width -> [y_min, y_max] by the formulas of PS3.3 C.11.2.1.2/3.

    LINEAR keeps the standard's half-pixel offsets (c - 0.5, w - 1) on purpose:
    they are what makes two conformant viewers agree pixel for pixel.
    """
    y_min, y_max = y_range
    span = y_max - y_min
    x = np.asarray(arr, dtype=np.float64)
    if function == "LINEAR":
        if width < 1:
            raise ValueError(f"LINEAR window width must be >= 1, got {width}")
        low = center - 0.5 - (width - 1) / 2
        high = center - 0.5 + (width - 1) / 2
        if width == 1:  # a threshold: the ramp below has no interior
            return np.where(x <= low, y_min, y_max)
        y = ((x - (center - 0.5)) / (width - 1) + 0.5) * span + y_min
        return np.where(x <= low, y_min, np.where(x > high, y_max, y))
    if function == "LINEAR_EXACT":
        if width <= 0:
            raise ValueError(f"LINEAR_EXACT window width must be > 0, got {width}")
        y = ((x - center) / width + 0.5) * span + y_min
        return np.where(x <= center - width / 2, y_min, np.where(x > center + width / 2, y_max, y))
    if function == "SIGMOID":
        if width <= 0:
            raise ValueError(f"SIGMOID window width must be > 0, got {width}")
        return span / (1 + np.exp(-4 * (x - center) / width)) + y_min
    raise ValueError(f"unknown VOI LUT Function {function!r}")


def apply_voi_lut(
    arr: np.ndarray,
    ds: Dataset,
    index: int = 0,
    y_range: DisplayRange = UINT8_RANGE,
    mask: np.ndarray | None = None,
    present: tuple[float, float] | None = None,
) -> np.ndarray:
    """Modality values -> display values in `y_range` (PS3.3 C.11.2), float64.

    Uses the VOI LUT Sequence if present (as pydicom does), else the `index`-th
    Window Center/Width with the VOI LUT Function, else a linear ramp over the
    values present, ignoring pixels where `mask` is True (padding), so that an
    image without a window still shows something. `present` gives that (min, max)
    when `arr` is not the image itself but every value it may hold (a lookup table).
    """
    if ds.get("VOILUTSequence"):
        return _apply_voi_lut_sequence(arr, ds, index, y_range)
    window = window_values(ds, index)
    if window is not None:
        center, width, function = window
        return apply_windowing(arr, center, width, function, y_range)
    if present is None:
        values = arr if mask is None else arr[~mask]
        if values.size == 0:
            return np.full(arr.shape, y_range[0], dtype=np.float64)
        present = float(values.min()), float(values.max())
    low, high = present
    return apply_windowing(arr, (low + high) / 2, max(high - low, 1.0), "LINEAR_EXACT", y_range)


def has_window(ds: Dataset) -> bool:
    """Whether the VOI LUT comes from the header (a VOI LUT Sequence or a window), not the values present."""
    return bool(ds.get("VOILUTSequence")) or window_values(ds) is not None


@dataclass(frozen=True)
class PixelTransform:
    """Stored values -> the model frame: Rescale Slope/Intercept (PS3.3 C.11.1.1.2), then
    MONOCHROME1's inversion about `invert_about` (low + high of the Modality LUT output).

    The decode stage stores the stored values (uint16 for a 16-bit radiograph, half the
    float32 frame) and this, when the Modality LUT is a rescale; `model_frame` gives back
    exactly the float32 frame `apply_modality_lut` and `to_bone_bright` would have made.
    """

    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    invert_about: float | None = None

    def to_record(self) -> dict[str, Any]:
        return {"rescale_slope": self.rescale_slope, "rescale_intercept": self.rescale_intercept,
                "invert_about": self.invert_about}

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> PixelTransform | None:
        """None (an event without it, or a float blob): the blob already holds the model frame."""
        if record is None:
            return None
        return cls(float(record["rescale_slope"]), float(record["rescale_intercept"]), record.get("invert_about"))


def rescale_of(ds: Dataset) -> PixelTransform | None:
    """The transform of a grayscale dataset whose Modality LUT is a rescale (or nothing), else None."""
    if ds.get("ModalityLUTSequence"):
        return None
    slope, intercept = 1.0, 0.0
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:  # pydicom applies them only together
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    invert = None
    if str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        low, high = modality_value_range(ds)
        invert = low + high
    return PixelTransform(slope, intercept, invert)


def model_frame(stored: np.ndarray, transform: PixelTransform | None) -> np.ndarray:
    """The float32 model frame from a pixel blob and its transform (None: the blob is the frame).

    The arithmetic is the one `apply_modality_lut` (pydicom's, in float64 when a rescale is
    applied) and `to_bone_bright` (float32) do, so the frame is bit for bit the same.
    """
    if transform is None:
        return np.asarray(stored, dtype=np.float32)
    if transform.rescale_slope != 1.0 or transform.rescale_intercept != 0.0:
        frame = stored.astype(np.float64) * transform.rescale_slope
        frame += transform.rescale_intercept
        frame = frame.astype(np.float32)
    else:
        frame = stored.astype(np.float32)
    if transform.invert_about is not None:
        np.subtract(np.float32(transform.invert_about), frame, out=frame)
    return frame


def window_values(ds: Dataset, index: int = 0) -> tuple[float, float, str] | None:
    """The `index`-th (Window Center, Window Width, VOI LUT Function), or None if absent."""
    centers = _as_list(ds.get("WindowCenter"))
    widths = _as_list(ds.get("WindowWidth"))
    if not centers or not widths:
        return None
    if index >= min(len(centers), len(widths)):
        raise ValueError(f"no window at index {index}: {len(centers)} center(s), {len(widths)} width(s)")
    functions = _as_list(ds.get("VOILUTFunction")) or ["LINEAR"]
    function = str(functions[min(index, len(functions) - 1)]).strip().upper() or "LINEAR"
    if function not in VOI_LUT_FUNCTIONS:
        raise ValueError(f"unknown VOI LUT Function {function!r}")
    return float(centers[index]), float(widths[index]), function


def to_bone_bright(
    arr: np.ndarray, ds: Dataset, value_range: tuple[float, float] | None = None
) -> np.ndarray:
    """Invert MONOCHROME1 (minimum is white) so that high values are bright everywhere.

    The inversion is `low + high - x` over `value_range`, by default the full
    Modality LUT output range, not the min/max present: it is then the same for
    every frame and every encoding of an image. Pass (0, 255) for display arrays.
    """
    if str(ds.get("PhotometricInterpretation", "")).strip() != "MONOCHROME1":
        return arr
    low, high = value_range if value_range is not None else modality_value_range(ds)
    return (low + high) - arr


def color_value_range(ds: Dataset) -> tuple[float, float]:
    """The sample range of a color image after `convert_to_grayscale`.

    PALETTE COLOR outputs the palette's entry depth (PS3.3 C.7.6.3.1.5), others Bits Stored.
    """
    if str(ds.get("PhotometricInterpretation", "")).strip() == "PALETTE COLOR":
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
    else:
        bits = int(ds.BitsStored)
    return 0.0, float((1 << bits) - 1)


def convert_to_grayscale(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    """Color samples (RGB, or PALETTE COLOR indices) -> BT.601 luma as float32.

    `arr` must already be RGB (pydicom converts YBR_* to RGB when decoding).
    Luma keeps the sample range (0-255 for 8-bit) so the display scaling stays simple.
    """
    if str(ds.get("PhotometricInterpretation", "")).strip() == "PALETTE COLOR":
        arr = _pydicom_apply_color_lut(arr, ds)
    if arr.ndim < 3 or arr.shape[-1] != 3:
        raise ValueError(f"expected RGB samples in the last axis, got shape {arr.shape}")
    return np.asarray(arr, dtype=np.float32) @ BT601_LUMA


def _apply_voi_lut_sequence(
    arr: np.ndarray, ds: Dataset, index: int, y_range: DisplayRange
) -> np.ndarray:
    """Look up each value in the VOI LUT (values outside clamp to the ends), then scale."""
    items = ds.VOILUTSequence
    if index >= len(items):
        raise ValueError(f"no VOI LUT at index {index}: the sequence has {len(items)} item(s)")
    item = items[index]
    _, first_mapped, bits = (int(v) for v in item.LUTDescriptor)
    lut = _lut_data(item, ds).astype(np.float64)
    positions = np.clip(np.rint(np.asarray(arr, dtype=np.float64)) - first_mapped, 0, lut.size - 1)
    y_min, y_max = y_range
    return lut[positions.astype(np.intp)] / float((1 << bits) - 1) * (y_max - y_min) + y_min


def _lut_data(item: Dataset, ds: Dataset) -> np.ndarray:
    """LUT Data as an integer array; OW data is unpacked with the dataset's endianness."""
    entries = int(item.LUTDescriptor[0]) or 1 << 16
    element = item["LUTData"]
    if element.VR == VR.OW or isinstance(element.value, bytes):
        little = ds.original_encoding[1] if ds.original_encoding[1] is not None else True
        return np.frombuffer(element.value, dtype="<u2" if little else ">u2")[:entries]
    return np.asarray(_as_list(element.value), dtype=np.int64)[:entries]


def _as_list(value: object) -> list:
    """DICOM values may be a single value, a MultiValue, or None; always give a list."""
    if value is None or value == "":
        return []
    if isinstance(value, (MultiValue, list, tuple, Sequence)) and not isinstance(value, (str, bytes)):
        return list(value)
    return [value]
