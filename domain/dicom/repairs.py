"""Header repairs: fix a malformed Image Pixel header only where exactly one reading is possible.

Each repair is named after what it fixes, changes `ds` in place and returns a
short note for people ("BitsStored missing: set to HighBit + 1 = 15"), or None
when there was nothing to fix. Where two readings of the bytes are possible it
raises `Rejected` with a reason that names both: a guessed header gives wrong
pixels that look right, a rejection is visible. Decode applies them, in
`REPAIRS` order, after the not-an-image check and before the header checks.

A repair may derive a value from the rest of the header or from what the
standard defines (High Bit = Bits Stored - 1, MONOCHROME has one sample per
pixel), or from the pixel data when the derivation has no remainder; never
from what is typical. Reasons and notes name an attribute's VR and length, not
its value, unless the value is one the code has matched (an integer, a defined
term): they travel to the DLQ, the logs and the bus.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable
from functools import partial

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID
from radstream.domain.dicom.vocabulary import describe
from radstream.domain.errors import Rejected

Repair = Callable[[Dataset], "str | None"]

# The Image Pixel module's US attributes (PS3.3 C.7.6.3) that decode reads.
IMAGE_PIXEL_US = (
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PlanarConfiguration",
)
TEXT_VRS = ("AE", "AS", "CS", "DS", "IS", "LO", "LT", "SH", "ST", "UC", "UT")
INTEGER_VRS = ("SS", "UL", "SL", "UV", "SV")
US_MAX = 0xFFFF
TEXT_INTEGER = re.compile(rb" *\+?(\d+)(?:\.0*)? *")  # DICOM pads text with spaces, never NUL

SAMPLES_FOR_PHOTOMETRIC = {
    "MONOCHROME1": 1,
    "MONOCHROME2": 1,
    "PALETTE COLOR": 1,
    "RGB": 3,
    "YBR_FULL": 3,
    "YBR_FULL_422": 3,
    "YBR_ICT": 3,
    "YBR_RCT": 3,
}
PHOTOMETRIC_FOR_SAMPLES = {1: "MONOCHROME1, MONOCHROME2 or PALETTE COLOR", 3: "RGB or YBR_FULL"}

# Single-frame IODs: no Multi-frame module, so a missing Number of Frames means exactly one.
SINGLE_FRAME_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.1",  # CR
        "1.2.840.10008.5.1.4.1.1.1.1",  # DX for presentation
        "1.2.840.10008.5.1.4.1.1.1.1.1",  # DX for processing
        "1.2.840.10008.5.1.4.1.1.1.2",  # MG for presentation
        "1.2.840.10008.5.1.4.1.1.1.2.1",  # MG for processing
        "1.2.840.10008.5.1.4.1.1.1.3",  # IO for presentation
        "1.2.840.10008.5.1.4.1.1.1.3.1",  # IO for processing
        "1.2.840.10008.5.1.4.1.1.2",  # CT
        "1.2.840.10008.5.1.4.1.1.4",  # MR
        "1.2.840.10008.5.1.4.1.1.6.1",  # US (single frame)
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture
        "1.2.840.10008.5.1.4.1.1.128",  # PET
    }
)


def coerce_value_representation(ds: Dataset, keyword: str) -> str | None:
    """A US attribute written with another VR, or as text in an implicit VR file, read as US.

    Coerced only when the value is one integer in 0-65535 exactly (text "128",
    "128.0"). In implicit VR a 2-byte value is both a binary US and possibly
    two characters ("64" is also 13366): that is ambiguous and refused.
    """
    tag = tag_for_keyword(keyword)
    if tag is None or tag not in ds:
        return None
    raw = ds.get_item(tag)
    if isinstance(raw, RawDataElement) and raw.VR in (None, "UN") and isinstance(raw.value, bytes):
        return _coerce_undeclared_bytes(ds, keyword, raw)
    element = ds[tag]
    value = element.value
    if value is None or value == "":
        return None  # empty: the header checks report it missing
    if element.VR == "US":
        if isinstance(value, (MultiValue, list, tuple)):
            raise Rejected(f"{keyword} has {len(value)} values where one is allowed: which is meant is ambiguous",
                           code="malformed_header")
        return None
    if element.VR in TEXT_VRS and isinstance(value, (str, int, float)):
        number = _text_integer(str(value).encode("ascii", "replace"))
        text = str(value).strip()
    elif element.VR in INTEGER_VRS and isinstance(value, int):
        number, text = value, str(value)
    else:
        number, text = None, repr(value)
    if number is None or not 0 <= number <= US_MAX:
        raise Rejected(f"{describe(keyword, element.VR, text)} is not an integer 0-65535", code="malformed_header")
    ds[tag] = DataElement(tag, "US", number)
    return f"{keyword} had VR {element.VR} ({text!r}): read as US {number}"


def samples_per_pixel_from_photometric(ds: Dataset) -> str | None:
    """Samples per Pixel missing: the photometric interpretation defines it (PS3.3 C.7.6.3.1.2)."""
    if ds.get("SamplesPerPixel") not in (None, ""):
        return None
    photometric = str(ds.get("PhotometricInterpretation") or "").strip()
    samples = SAMPLES_FOR_PHOTOMETRIC.get(photometric)
    if samples is None:
        return None  # the header checks reject it
    ds.SamplesPerPixel = samples
    return f"SamplesPerPixel missing: set to {samples} ({photometric} has {samples})"


def refuse_missing_photometric(ds: Dataset) -> str | None:
    """Photometric Interpretation missing: never repaired, Samples per Pixel does not decide it."""
    if ds.get("PhotometricInterpretation") not in (None, ""):
        return None
    samples = ds.get("SamplesPerPixel")
    readings = PHOTOMETRIC_FOR_SAMPLES.get(int(samples) if isinstance(samples, int) else -1)
    if readings is None:
        reason = "missing PhotometricInterpretation (and no usable SamplesPerPixel)"
    else:
        reason = (f"missing PhotometricInterpretation: ambiguous, {samples} sample(s) per pixel can be {readings}"
                  " (MONOCHROME1 and MONOCHROME2 are inverse readings)" if samples == 1 else
                  f"missing PhotometricInterpretation: ambiguous, {samples} samples per pixel can be {readings}")
    raise Rejected(reason, code="missing_attribute")


def bits_stored_from_high_bit(ds: Dataset) -> str | None:
    """Bits Stored missing: High Bit + 1 (PS3.3 C.7.6.3.1: High Bit is Bits Stored - 1).

    Not Bits Allocated: 12 or 15 of 16 bits is common, and the value range (the
    MONOCHROME1 inversion, padding, colour scaling) depends on it. Without High
    Bit it is ambiguous unless Bits Allocated is 1.
    """
    if ds.get("BitsStored") not in (None, ""):
        return None
    allocated, high_bit = _int_or_none(ds.get("BitsAllocated")), _int_or_none(ds.get("HighBit"))
    if high_bit is not None and allocated is not None and 0 <= high_bit < allocated:
        ds.BitsStored = high_bit + 1
        return f"BitsStored missing: set to HighBit + 1 = {high_bit + 1}"
    if allocated == 1:
        ds.BitsStored = 1
        return "BitsStored missing: set to 1 (BitsAllocated is 1)"
    if allocated is None:
        return None  # the header checks report BitsAllocated missing
    raise Rejected(f"missing BitsStored and HighBit: ambiguous, any of 1-{allocated} bits of BitsAllocated {allocated}"
                   " (the value range, MONOCHROME1 inversion and padding depend on it)", code="missing_attribute")


def high_bit_from_bits_stored(ds: Dataset) -> str | None:
    """High Bit missing: Bits Stored - 1 (PS3.3 C.7.6.3.1)."""
    if ds.get("HighBit") not in (None, ""):
        return None
    stored = _int_or_none(ds.get("BitsStored"))
    if stored is None or stored < 1:
        return None
    ds.HighBit = stored - 1
    return f"HighBit missing: set to BitsStored - 1 = {stored - 1}"


def rows_or_columns_from_pixel_data_length(ds: Dataset) -> str | None:
    """Rows or Columns missing: the other one and the native pixel data length determine it.

    Only when the length divides with no remainder (a trailing even-length pad
    byte allowed), for native pixel data, with a known frame count; both missing,
    compressed pixel data or two possible quotients are refused.
    """
    rows, columns = _int_or_none(ds.get("Rows")), _int_or_none(ds.get("Columns"))
    if rows and columns:
        return None
    missing, known = ("Rows", columns) if not rows else ("Columns", rows)
    if not rows and not columns:
        raise Rejected("missing Rows and Columns: ambiguous, any factorisation of the pixel data length fits",
                       code="missing_dimensions")
    if "PixelData" not in ds or ds.file_meta.TransferSyntaxUID.is_encapsulated:
        raise Rejected(f"missing {missing}: compressed pixel data does not determine it", code="missing_dimensions")
    allocated, samples = _int_or_none(ds.get("BitsAllocated")), _int_or_none(ds.get("SamplesPerPixel"))
    if allocated not in (8, 16, 32) or not samples:
        raise Rejected(f"missing {missing}: BitsAllocated {allocated} and SamplesPerPixel {samples} do not"
                       " determine it", code="missing_dimensions")
    frames = _known_frame_count(ds)
    if frames is None:
        raise Rejected(f"missing {missing} and Number of Frames: ambiguous, the length fits"
                       f" {missing} x frames for several frame counts", code="missing_dimensions")
    data = ds.PixelData
    per_line = known * samples * frames * allocated // 8
    lengths = {len(data)}
    if len(data) % 2 == 0 and data[-1:] == b"\x00":
        lengths.add(len(data) - 1)  # the pad byte that makes an odd value even (PS3.5 7.1.1)
    values = sorted({n // per_line for n in lengths if n and n % per_line == 0})
    if not values:
        raise Rejected(f"missing {missing}: {len(data)} bytes of pixel data is not a whole number of"
                       f" {per_line}-byte lines", code="missing_dimensions")
    if len(values) > 1:
        raise Rejected(f"missing {missing}: ambiguous, the pixel data length fits {values}",
                       code="missing_dimensions")
    setattr(ds, missing, values[0])
    return f"{missing} missing: set to {values[0]} from the pixel data length ({len(data)} bytes)"


def pixel_data_trailing_padding(ds: Dataset) -> str | None:
    """Native pixel data longer than the header needs: trim zero bytes shorter than one frame.

    Zero bytes shorter than a frame cannot be an uncounted frame or image data the
    header does not describe, so they are padding (pydicom's MR_small_padded.dcm).
    Non-zero extra bytes, or a whole frame or more, could be either: refused.
    The even-length pad byte after an odd-length value is normal, not a repair.
    """
    layout = _native_layout(ds)
    if layout is None:
        return None
    expected, frame_bytes = layout
    data = ds.PixelData
    extra = len(data) - expected
    if extra <= 0 or (extra == 1 and expected % 2 == 1):
        return None
    if extra >= frame_bytes:
        raise Rejected(f"pixel data is {len(data)} bytes, the header describes {expected}: ambiguous, the"
                       f" {extra} extra bytes could be frames that Number of Frames does not count",
                       code="length_mismatch")
    if any(data[expected:]):
        raise Rejected(f"pixel data is {len(data)} bytes, the header describes {expected}: the {extra} extra"
                       " bytes are not zero, so they could be image data the header does not describe",
                       code="length_mismatch")
    keep = expected + expected % 2
    ds.PixelData = bytes(data[:keep])
    return f"PixelData {len(data)} bytes, the header needs {expected}: trimmed {len(data) - keep} trailing zero bytes"


def pixel_representation_from_stored_values(ds: Dataset) -> str | None:
    """Pixel Representation missing: 0, only where signed and unsigned give the same image.

    That is: native MONOCHROME2 pixel data in which no stored value has its sign
    bit set, no Pixel Padding Value and no LUT sequences (whose descriptors are
    read by Pixel Representation). MONOCHROME1 is inverted over the value range,
    which differs between the two, so it is refused, as is every other case.
    """
    if ds.get("PixelRepresentation") not in (None, ""):
        return None
    layout = _native_layout(ds)
    stored = _int_or_none(ds.get("BitsStored"))
    photometric = str(ds.get("PhotometricInterpretation") or "").strip()
    allocated = _int_or_none(ds.get("BitsAllocated"))
    why = None
    if layout is None or allocated not in (8, 16, 32) or stored is None:
        why = "only native 8, 16 or 32-bit pixel data can be checked"
    elif photometric != "MONOCHROME2":
        shown = photometric if photometric in SAMPLES_FOR_PHOTOMETRIC else describe("PhotometricInterpretation", "CS",
                                                                                    photometric)
        why = f"{shown} maps the two readings to different images"
    elif "PixelPaddingValue" in ds or "ModalityLUTSequence" in ds or "VOILUTSequence" in ds:
        why = "Pixel Padding Value and LUT descriptors are read differently"
    else:
        expected = layout[0]
        order = "<" if ds.file_meta.TransferSyntaxUID.is_little_endian else ">"
        dtype = np.dtype(f"u{allocated // 8}").newbyteorder(order)
        values = np.frombuffer(ds.PixelData, dtype=dtype, count=min(expected, len(ds.PixelData)) // dtype.itemsize)
        if values.size and int(values.max()) >= 1 << (stored - 1):
            why = f"some stored values have the sign bit (bit {stored - 1}) set"
    if why is not None:
        raise Rejected(f"missing PixelRepresentation: ambiguous, signed or unsigned ({why})", code="missing_attribute")
    ds.PixelRepresentation = 0
    return (f"PixelRepresentation missing: set to 0 (no stored value has bit {stored - 1} set,"
            " so signed and unsigned read the same)")


# Order matters: values are coerced before they are used, dimensions before lengths.
REPAIRS: tuple[Repair, ...] = (
    *(partial(coerce_value_representation, keyword=keyword) for keyword in IMAGE_PIXEL_US),
    samples_per_pixel_from_photometric,
    refuse_missing_photometric,
    bits_stored_from_high_bit,
    high_bit_from_bits_stored,
    rows_or_columns_from_pixel_data_length,
    pixel_data_trailing_padding,
    pixel_representation_from_stored_values,
)


def apply_repairs(ds: Dataset) -> list[str]:
    """Apply every repair in order; the notes of those that changed something."""
    return [note for repair in REPAIRS if (note := repair(ds)) is not None]


def _coerce_undeclared_bytes(ds: Dataset, keyword: str, raw: RawDataElement) -> str | None:
    """Implicit VR (or UN): the bytes are a binary US, or text that the writer meant as one."""
    data = raw.value
    if not data:
        return None
    number = _text_integer(data)
    if len(data) == 2:
        if number is not None:
            binary = struct.unpack("<H" if raw.is_little_endian else ">H", data)[0]
            raise Rejected(f"{keyword} bytes {data!r}: ambiguous, binary US {binary} or text {number}",
                           code="malformed_header")
        return None  # an ordinary binary US
    if number is None or number > US_MAX:
        raise Rejected(f"{describe(keyword, raw.VR or 'implicit', data)} is neither one US nor an integer as text",
                       code="malformed_header")
    ds[raw.tag] = DataElement(raw.tag, "US", number)
    return f"{keyword} was text {data.decode('ascii').strip()!r} in place of a binary US: read as {number}"


def _text_integer(data: bytes) -> int | None:
    match = TEXT_INTEGER.fullmatch(data)
    return int(match.group(1)) if match else None


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, int) else None


def _known_frame_count(ds: Dataset) -> int | None:
    """Number of Frames, or 1 for a single-frame SOP class; None when it is not known."""
    frames = ds.get("NumberOfFrames")
    if frames not in (None, ""):
        try:
            return int(frames)
        except (TypeError, ValueError):
            return None
    return 1 if UID(str(ds.get("SOPClassUID", ""))) in SINGLE_FRAME_CLASSES else None


def _native_layout(ds: Dataset) -> tuple[int, int] | None:
    """(bytes the header needs, bytes per frame) for native pixel data with a complete header."""
    if "PixelData" not in ds or ds.file_meta.TransferSyntaxUID.is_encapsulated:
        return None
    keywords = ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated")
    values = [_int_or_none(ds.get(keyword)) for keyword in keywords]
    if not all(values):
        return None
    try:
        frames = int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        return None
    rows, columns, samples, allocated = values  # type: ignore[misc]
    if str(ds.get("PhotometricInterpretation") or "").strip() == "YBR_FULL_422":
        samples = 2  # two chroma samples are shared by each pair of pixels
    frame_bits = rows * columns * samples * allocated
    return math.ceil(frame_bits * frames / 8), math.ceil(frame_bits / 8)
