"""DICOM bytes -> model-ready frames, display frames and allow-listed metadata.

The decode stage's pure core. The order matters and is the point of this module:
parse, refuse what is not an image, repair the header where exactly one reading
is possible (`repairs.py`, each repair recorded), check the header against `DecodeLimits`
*before* any pixel is decoded (a few kilobytes of JPEG 2000 can claim gigabytes),
check the pixel data length, and only then decode frame by frame.

Every failure leaves as `NotAnImage` or `Rejected(reason, code)`; a pydicom,
codec or numpy exception never escapes raw.

A reason goes to the DLQ, the logs and the trace, so it names the attribute, its
VR and its length, never a header value (`describe`): a Photometric
Interpretation of 'DOE^JOHANNA' is a name in the wrong place. Library messages
are scrubbed of quoted text before they join a reason, and pydicom's own value
validation, which logs and warns with the value, is off while decoding (this
module checks what it needs itself).

Reading policy: `dcmread(force=False)` when the 'DICM' prefix is at byte 128
(every Part 10 file). Without it, `force=True` is used only when the bytes start
with a group 0008 element, as datasets written without a preamble and File Meta
(raw C-STORE payloads, old archives) do; the transfer syntax is then inferred
from the encoding pydicom detected, and a SOP Class UID is required. Anything
else is "not a DICOM file", instead of whatever force=True would make of it.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import BytesIO
from typing import Literal

import numpy as np
import pydicom
from pydicom.config import disable_value_validation
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder, iter_pixels
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    UID_dictionary,
)
from radstream.domain.dicom.codestream import check_codestream_dimensions, frame_count
from radstream.domain.dicom.gdcm_jpeg12 import decoding_options
from radstream.domain.dicom.metadata import Metadata, extract_metadata
from radstream.domain.dicom.pixels import (
    UINT8_RANGE,
    PixelTransform,
    apply_modality_lut,
    apply_voi_lut,
    color_value_range,
    correct_unused_bits,
    convert_to_grayscale,
    has_window,
    model_frame,
    modality_value_range,
    pixel_padding_mask,
    rescale_of,
    stored_value_range,
    to_bone_bright,
    window_values,
)
from radstream.domain.dicom.repairs import apply_repairs
from radstream.domain.dicom.vocabulary import describe
from radstream.domain.errors import NotAnImage, Rejected, StageError

MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
COLOR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR")
BITS_ALLOCATED = (1, 8, 16, 32)
DICM_OFFSET = 128
UNDEFINED_LENGTH = 0xFFFFFFFF
MAX_REASON = 300
QUOTED = re.compile(r"b?'[^']*'|b?\"[^\"]*\"")
# pydicom logs each failing codec plugin's exception (with its traceback) before raising
# one error that names them all; that error becomes the rejection's reason.
PLUGIN_LOGGER = "pydicom.pixels.decoders.base"
TABLE_CACHE = 64
_TABLES: OrderedDict[tuple, tuple[np.ndarray, tuple[float, float, int | None, int | None] | None]] = OrderedDict()


@dataclass(frozen=True)
class DecodeLimits:
    """What the decode stage accepts; checked against the header before decoding.

    max_bytes bounds both the input and the decoded stored pixels (rows x columns
    x frames x samples x bytes per sample); the float32 output is about twice that.
    multi_frame: "split" gives one output frame per frame, "reject" refuses them.
    color: "to_grayscale" converts RGB, YBR_* and PALETTE COLOR to ITU-R BT.601
    luma (0.299 R + 0.587 G + 0.114 B); "reject" refuses them.
    """

    max_rows: int = 16384
    max_columns: int = 16384
    max_frames: int = 1000
    max_bits: int = 16
    max_bytes: int = 1 << 30
    multi_frame: Literal["split", "reject"] = "split"
    color: Literal["to_grayscale", "reject"] = "to_grayscale"

    def __post_init__(self) -> None:
        if self.multi_frame not in ("split", "reject"):
            raise ValueError(f"multi_frame must be 'split' or 'reject', not {self.multi_frame!r}")
        if self.color not in ("to_grayscale", "reject"):
            raise ValueError(f"color must be 'to_grayscale' or 'reject', not {self.color!r}")


@dataclass(frozen=True)
class DecodedInstance:
    """stored: 2-D per frame, what the decode stage stores as the pixel blob: the stored
    values (their own integer dtype, padding set to the darkest value) when `transform` says
    how they become the model frame, else (color, a Modality LUT Sequence, 32-bit samples)
    the float32 model frame itself, with `transform` None. Native 8- and 16-bit stored frames
    are read-only views on the input bytes (`_PixelDataInPlace`), not copies.
    frames: 2-D float32, Modality LUT applied, bone bright (for models), made on request.
    display: 2-D uint8, VOI LUT applied, bone bright (for people). Same count and shape.
    repairs: one note per header repair (`repairs.py`), also in metadata["Repairs"].
    """

    stored: list[np.ndarray]
    display: list[np.ndarray]
    metadata: Metadata = field(default_factory=dict)
    repairs: list[str] = field(default_factory=list)
    transform: PixelTransform | None = None

    @property
    def frames(self) -> list[np.ndarray]:
        return [model_frame(frame, self.transform) for frame in self.stored]


def decode_instance(data: bytes, limits: DecodeLimits = DecodeLimits()) -> DecodedInstance:
    """Decode one DICOM instance under `limits`, or raise NotAnImage / Rejected with the reason."""
    if len(data) > limits.max_bytes:
        raise Rejected(f"input is {len(data)} bytes, over the {limits.max_bytes} byte limit", code="too_large")
    with disable_value_validation():  # pydicom's validation logs and warns with the value
        ds = read_dataset(data)
        with _rejecting("malformed_header", "malformed image header"):
            check_is_image(ds)
            repairs = apply_repairs(ds)
            check_header(ds, limits)
            check_pixel_data_length(ds)
            metadata = extract_metadata(ds, repairs)
        with _rejecting("undecodable", "pixel data could not be decoded"), quiet_plugin_failures():
            stored, transform, display = decode_frames(ds)
    return DecodedInstance(stored=stored, display=display, metadata=metadata, repairs=repairs, transform=transform)


def read_dataset(data: bytes) -> Dataset:
    """Parse bytes into a Dataset (see the module docstring for when force is used)."""
    has_prefix = data[DICM_OFFSET : DICM_OFFSET + 4] == b"DICM"
    if not has_prefix and not _starts_with_dataset(data):
        raise Rejected("not a DICOM file: no 'DICM' prefix at byte 128 and no data set at byte 0", code="not_dicom")
    with warnings.catch_warnings(record=True) as caught, _rejecting("not_dicom", "not a readable DICOM file"):
        warnings.simplefilter("always")
        ds = pydicom.dcmread(_PixelDataInPlace(data) if isinstance(data, bytes) else BytesIO(data),
                             force=not has_prefix)
    # pydicom turns an early end of file into a warning and drops the cut element,
    # which would make a truncated image look like an object without pixels.
    # Other warnings are re-issued unchanged. (catch_warnings is process-global:
    # run decodes in processes, not threads, if warnings must stay exact.)
    for warning in caught:
        if "End of file" in str(warning.message):
            raise Rejected(f"truncated file: {_one_line(warning.message)}", code="truncated")
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    check_complete(ds, len(data))
    if "SOPClassUID" not in ds:
        if not has_prefix:
            raise Rejected("not a DICOM file: no preamble and no SOP Class UID", code="not_dicom")
        raise Rejected("no SOP Class UID: not a composite instance", code="missing_attribute")
    with _rejecting("malformed_header", "cannot determine the transfer syntax"):
        _ensure_transfer_syntax(ds)
    return ds


class _PixelDataInPlace(BytesIO):
    """The file's bytes, read as pydicom reads them, except that a defined-length Pixel Data
    value is handed over as a read-only view on `data` (immutable bytes) instead of a copy
    (7 MB for a CR); the frames are then views on it (`_reads_as_views`). pydicom reads an
    element header in one 8-byte read (tag first), plus, for a 4-byte length (explicit VR OB/OW),
    one 4-byte read, then the value in one read of exactly that length; anything else (an
    encapsulated value's item scan, every other element) is read, and copied, as before."""

    PIXEL_DATA_TAGS = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")  # (7FE0,0010), little and big endian

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self._view = memoryview(data)
        self._pixel_data_header = False
        self._last_length = b""  # the last 4 bytes of the latest 8- or 4-byte read

    def read(self, size: int | None = -1, /) -> bytes:  # type: ignore[override]
        if size is not None and size > 8 and self._pixel_data_header and size in (
                int.from_bytes(self._last_length, "little"), int.from_bytes(self._last_length, "big")):
            self._pixel_data_header = False
            start = self.tell()
            end = min(start + size, len(self._view))
            self.seek(end)
            return self._view[start:end]  # type: ignore[return-value]
        read = super().read(size)
        if size == 8:
            self._pixel_data_header = read[:4] in self.PIXEL_DATA_TAGS
        if size in (4, 8):
            self._last_length = read[-4:]
        return read


def check_complete(ds: Dataset, size: int) -> None:
    """The last element must end exactly at the end of the bytes.

    pydicom stops silently when the bytes end inside an element header and reads
    a cut value short, so a truncated file parses "successfully". Undefined
    lengths are covered by the end-of-file warning; deflated offsets are not
    file offsets, so those are left to the pixel data length check.
    """
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is not None and file_meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        return
    tags = list(ds.keys())
    if not tags:
        return
    last = ds.get_item(tags[-1], keep_deferred=True)
    if not isinstance(last, RawDataElement) or last.length == UNDEFINED_LENGTH:
        return
    end = last.value_tell + last.length
    if end != size:
        raise Rejected(
            f"truncated file: {size} bytes, but the last whole element {last.tag} ends at byte {end}", code="truncated"
        )


def check_is_image(ds: Dataset) -> None:
    """NotAnImage for objects without pixels (SR, PR, KO, ...); float pixels are unsupported.

    An image SOP class without Pixel Data is a broken image (often cut at an
    element boundary), not a non-image, so it is Rejected instead.
    """
    if "PixelData" in ds:
        return
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        raise Rejected("float pixel data is not supported", code="unsupported_pixel_data")
    uid = UID(str(ds.SOPClassUID))
    name = uid.name if uid in UID_dictionary else f"unregistered {describe('SOPClassUID', 'UI', str(uid))}"
    if "Image Storage" in name:
        raise Rejected(f"no Pixel Data in a {name} instance (truncated?)", code="missing_pixel_data")
    raise NotAnImage(f"not an image: {name}")


def check_header(ds: Dataset, limits: DecodeLimits) -> None:
    """Refuse by header alone: dimensions, frames, bit depth, decoded size, photometric, syntax."""
    rows, columns = ds.get("Rows"), ds.get("Columns")
    if not rows or not columns:
        raise Rejected("missing Rows/Columns", code="missing_dimensions")
    rows, columns = int(rows), int(columns)
    if rows > limits.max_rows or columns > limits.max_columns:
        raise Rejected(
            f"image is {rows}x{columns}, over the {limits.max_rows}x{limits.max_columns} limit", code="too_large"
        )
    frames = frame_count(ds)
    if frames > limits.max_frames:
        raise Rejected(f"{frames} frames, over the {limits.max_frames} frame limit", code="too_large")
    if frames > 1 and limits.multi_frame == "reject":
        raise Rejected(f"multi-frame image ({frames} frames) refused by policy", code="multi_frame")
    for keyword in ("SamplesPerPixel", "BitsAllocated", "BitsStored", "PhotometricInterpretation"):
        if ds.get(keyword) in (None, ""):
            raise Rejected(f"missing {keyword}", code="missing_attribute")
    allocated, stored, samples = int(ds.BitsAllocated), int(ds.BitsStored), int(ds.SamplesPerPixel)
    if allocated not in BITS_ALLOCATED or not 1 <= stored <= allocated:
        raise Rejected(f"invalid bit depth: Bits Allocated {allocated}, Bits Stored {stored}", code="invalid_bit_depth")
    if stored > limits.max_bits:
        raise Rejected(f"Bits Stored {stored} is over the {limits.max_bits} bit limit", code="unsupported_bit_depth")
    decoded_bytes = rows * columns * frames * samples * max(allocated // 8, 1)
    if decoded_bytes > limits.max_bytes:
        raise Rejected(
            f"decoded pixels would be {decoded_bytes} bytes, over the {limits.max_bytes} byte limit", code="too_large"
        )
    check_photometric_interpretation(ds, limits)
    check_transfer_syntax(ds)


def check_photometric_interpretation(ds: Dataset, limits: DecodeLimits) -> None:
    """Grayscale always; color only under the to_grayscale policy; samples must match."""
    photometric = str(ds.PhotometricInterpretation).strip()
    samples = int(ds.SamplesPerPixel)
    if photometric in COLOR and limits.color == "reject":
        raise Rejected(f"color image ({photometric}) refused by policy", code="color")
    if photometric not in MONOCHROME + COLOR:
        raise Rejected(f"unsupported {describe('PhotometricInterpretation', 'CS', photometric)}",
                       code="unsupported_photometric")
    expected = 1 if photometric in MONOCHROME or photometric == "PALETTE COLOR" else 3
    if samples != expected:
        raise Rejected(f"{photometric} with {samples} samples per pixel (expected {expected})", code="invalid_samples")


def check_transfer_syntax(ds: Dataset) -> None:
    """Only syntaxes that an installed pydicom decoder plugin can decode."""
    uid = UID(str(ds.file_meta.TransferSyntaxUID))
    try:
        available = get_decoder(uid).is_available
    except NotImplementedError:
        available = False
    if not available:
        named = f"{uid.name} ({uid})" if uid in UID_dictionary else describe("TransferSyntaxUID", "UI", str(uid))
        raise Rejected(f"unsupported transfer syntax {named}", code="unsupported_transfer_syntax")


def check_pixel_data_length(ds: Dataset) -> None:
    """Native pixel data must be as long as the header says (plus one padding byte at most)."""
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        check_codestream_dimensions(ds)
        return  # otherwise the codec sees a cut codestream; the decode step reports it
    actual, expected = len(ds.PixelData), get_expected_length(ds)
    if actual < expected:
        raise Rejected(f"truncated pixel data: {actual} bytes, the header needs {expected}", code="truncated")
    if actual > expected + 1:
        raise Rejected(f"pixel data is {actual} bytes, the header describes {expected}", code="length_mismatch")


def decode_frames(ds: Dataset) -> tuple[list[np.ndarray], PixelTransform | None, list[np.ndarray]]:
    """Decode frame by frame into (pixel blob frames, their transform, uint8 display frames).

    Grayscale with a rescale (or no Modality LUT) and 8- or 16-bit samples takes the lookup
    path (`DisplayLookup`): no full-size float array is made, and the blob frames are the
    stored values. Anything else takes the general path (`_grayscale_frame`, `_color_frame`),
    whose blob frames are the float32 model frames (transform None). Both paths give the
    same model frames and display images.
    """
    photometric = str(ds.PhotometricInterpretation).strip()
    stored_frames: list[np.ndarray] = []
    display: list[np.ndarray] = []
    lookup: DisplayLookup | None = None
    rescale = rescale_of(ds) if photometric in MONOCHROME else None
    general = rescale is None
    options = decoding_options(ds)
    own_bits = not general and _reads_as_views(ds)
    if own_bits:  # the frames are views on the pixel data, their unused bits corrected below
        options = {**options, "correct_unused_bits": False, "view_only": True}
    for stored in iter_pixels(ds, **options):
        present = None
        if own_bits:
            present = _present_values(stored)
            corrected = correct_unused_bits(stored, ds, present)
            if corrected is not stored:
                stored, present = corrected, _present_values(corrected)
        if not general and stored.dtype.itemsize <= 2 and stored.dtype.kind in "iu":
            if not stored.dtype.isnative:  # big endian: the tables are indexed by native bits
                stored = stored.astype(stored.dtype.newbyteorder("="))
            lookup = lookup or DisplayLookup(ds, stored.dtype, rescale)
            blob, shown = lookup.frame(stored, present)
        elif photometric in MONOCHROME:
            general = True
            blob, shown = _grayscale_frame(stored, ds)
        else:
            blob, shown = _color_frame(stored, ds)
        stored_frames.append(blob)
        display.append(shown)
    # All frames share one dtype, so they all took one path.
    transform = lookup.transform if lookup is not None and lookup.keeps_stored else None
    return stored_frames, transform, display


def _reads_as_views(ds: Dataset) -> bool:
    """Native little-endian 8- or 16-bit pixel data: pydicom can hand each frame over as a view on
    the Pixel Data value instead of the copy its unused-bits correction makes (that copy, and
    its two shifts over every pixel, change nothing when the unused bits are clear: PS3.5 8.1.1
    leaves them undefined, writers zero them). `correct_unused_bits` then corrects only the
    frames that need it, from one read-only min/max pass that the display map reuses."""
    syntax = ds.file_meta.TransferSyntaxUID
    return syntax.is_little_endian and not syntax.is_encapsulated and int(ds.BitsAllocated) in (8, 16)


def _present_values(stored: np.ndarray) -> tuple[int, int]:
    """(min, max) of a 2-D frame in one pass (cv2 imported here: see `_affine_display`)."""
    import cv2

    first, last, _, _ = cv2.minMaxLoc(stored)
    return int(first), int(last)


class DisplayLookup:
    """The grayscale pipeline (PS3.3 C.11) on the stored values of one instance's frames.

    The display image is computed on the integer data, by the cheapest of three ways that
    give identical bytes: for a frame smaller than the stored dtype's domain, the pipeline
    on its own values (`_display_direct`); else a table over every stored value (`table[v]`
    is what `_grayscale_frame` shows for v, indexed by the unsigned view, so signed values
    need no copy); and, for a LINEAR or LINEAR_EXACT window without padding, one clamped
    affine map in OpenCV, used only after it reproduced the table for every stored value.
    The blob frame is the stored values, padding replaced by the stored value whose model
    value is what `_grayscale_frame` gives padding (the minimum); if no stored value has
    exactly that model value, it is the float32 model frame (`keeps_stored` False).
    """

    def __init__(self, ds: Dataset, dtype: np.dtype, transform: PixelTransform | None = None) -> None:
        """`transform`: `rescale_of(ds)` where the caller has it already (computed here otherwise)."""
        self.ds = ds
        self.transform = transform if transform is not None else rescale_of(ds)
        self.dtype = np.dtype(dtype)
        self.unsigned = np.dtype(f"u{self.dtype.itemsize}")
        self.domain_size = 1 << (8 * self.dtype.itemsize)
        self.fixed_window = has_window(ds)
        self._domain: np.ndarray | None = None
        self._table: np.ndarray | None = None
        self._affine: tuple[float, float, int | None, int | None] | None = None
        self.padding_declared = "PixelPaddingValue" in ds and ds.PixelPaddingValue is not None
        self.pad_value = self._darkest_stored_value() if self.padding_declared else None
        self.keeps_stored = not self.padding_declared or self.pad_value is not None

    # -- the tables, built once per instance and only when a frame needs them --------------------
    @property
    def domain(self) -> np.ndarray:
        """domain[i]: the stored value whose bits are i."""
        if self._domain is None:
            bits = np.arange(self.domain_size, dtype=np.int64).astype(self.unsigned)
            self._domain = bits.view(self.dtype).astype(np.int64)
        return self._domain

    def _display_table(self, present: tuple[float, float] | None) -> np.ndarray:
        domain = self.domain
        padding = pixel_padding_mask(domain, self.ds)
        modality = apply_modality_lut(domain, self.ds)
        shown = to_bone_bright(apply_voi_lut(modality, self.ds, present=present), self.ds, UINT8_RANGE)
        if padding is not None:
            shown[padding] = UINT8_RANGE[0]
        return _to_uint8(shown)

    def _darkest_stored_value(self) -> int | None:
        target = np.float32(modality_value_range(self.ds)[0])
        for value in stored_value_range(self.ds):
            if model_frame(np.array([value], dtype=np.int64), self.transform)[0] == target:
                return value
        return None

    def _fixed_window_tables(self) -> tuple[np.ndarray, tuple[float, float, int | None, int | None] | None]:
        """The table and the checked affine map, shared by instances with the same header values
        (a site's images mostly are: one device, one window), up to TABLE_CACHE of them."""
        key = None
        if not self.ds.get("VOILUTSequence"):
            key = (self.dtype.str, self.transform, window_values(self.ds),
                   _int_or_none(self.ds.get("PixelPaddingValue")), _int_or_none(self.ds.get("PixelPaddingRangeLimit")))
            if key in _TABLES:
                _TABLES.move_to_end(key)
                return _TABLES[key]
        table = self._display_table(None)
        tables = table, self._checked_affine(table)
        if key is not None:
            _TABLES[key] = tables
            while len(_TABLES) > TABLE_CACHE:
                _TABLES.popitem(last=False)
        return tables

    def _checked_affine(self, table: np.ndarray) -> tuple[float, float, int | None, int | None] | None:
        """(alpha, beta, low, high): display = convertScaleAbs(clamp(v, low, high), alpha, beta),
        if that equals `table` for every stored value; else None."""
        window = window_values(self.ds) if not self.ds.get("VOILUTSequence") else None
        if self.padding_declared or window is None or self.transform is None:
            return None
        center, width, function = window
        slope, intercept = self.transform.rescale_slope, self.transform.rescale_intercept
        if function == "LINEAR" and width > 1:
            alpha = slope / (width - 1) * 255.0
            beta = ((intercept - (center - 0.5)) / (width - 1) + 0.5) * 255.0
        elif function == "LINEAR_EXACT" and width > 0:
            alpha = slope / width * 255.0
            beta = ((intercept - center) / width + 0.5) * 255.0
        else:
            return None
        if self.transform.invert_about is not None:
            alpha, beta = -alpha, 255.0 - beta
        if alpha == 0:
            return None
        zero = -beta / alpha  # where the map crosses 0: the side beyond it is clamped
        first, last = int(self.domain.min()), int(self.domain.max())
        low = int(np.ceil(zero)) if alpha > 0 and first < zero else None
        high = int(np.floor(zero)) if alpha < 0 and last > zero else None
        affine = (alpha, beta, low, high)
        domain = self.domain.astype(self.dtype).reshape(1, -1)
        return affine if np.array_equal(_affine_display(domain, affine).ravel(), table) else None

    # -- one frame ------------------------------------------------------------------------------
    def frame(self, stored: np.ndarray, present: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(blob frame, display frame) of one frame of stored values; `present`: their (min, max)
        where the caller has it."""
        mask = pixel_padding_mask(stored, self.ds) if self.padding_declared else None
        if mask is not None and not mask.any():
            mask = None
        shown = self._display(stored, mask, present)
        if mask is None:
            return (stored if self.keeps_stored else model_frame(stored, self.transform)), shown
        if not self.keeps_stored:
            frame = model_frame(stored, self.transform)
            frame[mask] = modality_value_range(self.ds)[0]
            return frame, shown
        blob = stored if stored.flags.writeable else stored.copy()  # some plugins hand over read-only views
        blob[mask] = self.pad_value
        return blob, shown

    def _display(self, stored: np.ndarray, mask: np.ndarray | None, present: tuple[int, int] | None) -> np.ndarray:
        if stored.size < self.domain_size:
            return _display_direct(stored, self.ds, mask)
        if not self.fixed_window:  # a ramp over the values present, padding left out: a table per frame
            return np.take(self._display_table(self._present_range(stored, mask)), stored.view(self.unsigned),
                           mode="clip")
        if self._table is None:
            self._table, self._affine = self._fixed_window_tables()
        if self._affine is not None:
            return _affine_display(stored, self._affine, present)
        return np.take(self._table, stored.view(self.unsigned), mode="clip")

    def _present_range(self, stored: np.ndarray, mask: np.ndarray | None) -> tuple[float, float] | None:
        """(min, max) of the modality values present, padding left out; None when all is padding
        (every pixel then shows as padding, whatever the ramp)."""
        values = stored if mask is None else stored[~mask]
        if values.size == 0:
            return None
        ends = apply_modality_lut(np.array([values.min(), values.max()], dtype=np.int64), self.ds)
        return float(ends.min()), float(ends.max())


def _int_or_none(value: object) -> int | None:
    return None if value is None or value == "" else int(value)  # type: ignore[arg-type]


def _affine_display(stored: np.ndarray, affine: tuple[float, float, int | None, int | None],
                    present: tuple[int, int] | None = None) -> np.ndarray:
    """convertScaleAbs saturates above 255 by itself; only the side that would go negative (and
    be mirrored by the absolute value) is clamped first. cv2 is imported here, not with the
    module: it maps ~400 MB of address space, and the receiver's header workers import this
    package under an RLIMIT_AS of 3x the dataset cap + 512 MB (services/instance_header.py)."""
    import cv2

    alpha, beta, low, high = affine
    if low is not None or high is not None:
        # The clamp is a full-size copy; it changes nothing when no value is beyond the bound
        # (a MONOCHROME1 film rarely reaches the top of its stored range), and one read-only
        # min/max pass (`present`, if the caller made it) is cheaper than that copy.
        first, last = present if present is not None else _present_values(stored)
        if low is not None and first < low:
            stored = cv2.max(stored, low)
        if high is not None and last > high:
            stored = cv2.min(stored, high)
    return cv2.convertScaleAbs(stored, alpha=alpha, beta=beta)


def _display_direct(stored: np.ndarray, ds: Dataset, mask: np.ndarray | None) -> np.ndarray:
    """`_grayscale_frame`'s display, on the frame's own values."""
    shown = to_bone_bright(apply_voi_lut(apply_modality_lut(stored, ds), ds, mask=mask), ds, UINT8_RANGE)
    if mask is not None:
        shown[mask] = UINT8_RANGE[0]
    return _to_uint8(shown)


def _grayscale_frame(stored: np.ndarray, ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The PS3.3 C.11 pipeline; padding is found on stored values and set to the minimum."""
    padding = pixel_padding_mask(stored, ds)
    modality = apply_modality_lut(stored, ds)
    shown = to_bone_bright(apply_voi_lut(modality, ds, mask=padding), ds, UINT8_RANGE)
    frame = np.asarray(to_bone_bright(modality, ds), dtype=np.float32)
    if padding is not None:
        frame[padding] = modality_value_range(ds)[0]
        shown[padding] = UINT8_RANGE[0]
    return frame, _to_uint8(shown)


def _color_frame(stored: np.ndarray, ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """BT.601 luma; display scales the sample range to 0-255 (color has no VOI LUT)."""
    luma = convert_to_grayscale(stored, ds)
    low, high = color_value_range(ds)
    shown = (luma.astype(np.float64) - low) / (high - low) * UINT8_RANGE[1]
    return luma, _to_uint8(shown)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(values, *UINT8_RANGE)).astype(np.uint8)


def _starts_with_dataset(data: bytes) -> bool:
    """A preamble-less dataset starts with a group 0002 or 0008 tag, little or big endian."""
    head = data[:2]
    return len(data) >= 8 and head in (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")


def _ensure_transfer_syntax(ds: Dataset) -> None:
    """Without File Meta the syntax is inferred from the encoding pydicom detected.

    Only native syntaxes can be inferred; encapsulated pixel data needs the UID.
    """
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is not None and file_meta.get("TransferSyntaxUID"):
        return
    implicit, little = ds.original_encoding
    if implicit and little:
        syntax = ImplicitVRLittleEndian
    elif implicit is False and little is not None:
        syntax = ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    else:
        raise Rejected("no Transfer Syntax UID and the encoding is unknown", code="unsupported_transfer_syntax")
    if "PixelData" in ds and ds["PixelData"].is_undefined_length:
        raise Rejected("encapsulated pixel data without a Transfer Syntax UID", code="unsupported_transfer_syntax")
    ds.ensure_file_meta()
    ds.file_meta.TransferSyntaxUID = syntax


class _DropTracebacks(logging.Filter):
    """Passes a record with a traceback only while its logger is enabled for DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is None or logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


@contextmanager
def quiet_plugin_failures() -> Iterator[None]:
    """While decoding, pydicom's per-plugin tracebacks stay out of the logs (kept at DEBUG):
    the one-line reason of the rejection already names every plugin's failure."""
    logger, quiet = logging.getLogger(PLUGIN_LOGGER), _DropTracebacks()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


@contextmanager
def _rejecting(code: str, what: str) -> Iterator[None]:
    """pydicom, the codecs and numpy raise many types on bad input; give each a reason and a code.

    Our own errors pass through; MemoryError passes so the runtime classifies it transient.
    """
    try:
        yield
    except (StageError, MemoryError):
        raise
    except Exception as exc:
        raise Rejected(f"{what}: {type(exc).__name__}: {_one_line(exc)}", code=code) from exc


def _one_line(message: object) -> str:
    """One line, at most MAX_REASON, every quoted string (a value, as libraries quote them) replaced by its length."""
    text = QUOTED.sub(lambda m: f"<{len(m.group()) - 2 - m.group().startswith('b')} characters>", str(message))
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."
