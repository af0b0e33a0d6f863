"""Decompression-bomb guard: a compressed frame must not be larger than Rows x Columns claim.

Codecs allocate what the codestream says (JPEG 2000's SIZ marker, JPEG's and JPEG-LS's SOF
segment), not what the DICOM header says, so a small file with a lying header could make a
decoder allocate without bound. These checks read the codestream headers before decoding.
"""

from __future__ import annotations

import struct

from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames

from radstream.domain.errors import Rejected

J2K_SIZ_MARKER = b"\xff\x4f\xff\x51"  # SOC then SIZ: Lsiz, Rsiz, Xsiz, Ysiz, XOsiz, YOsiz
# JPEG baseline, extended, lossless (process 14 and SV1), JPEG-LS lossless and near-lossless.
JPEG_SYNTAXES = (
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81",
)
# SOF0-3, 5-7, 9-11, 13-15, and JPEG-LS SOF55 (0xF7): frame headers carrying the image size.
JPEG_SOF_MARKERS = frozenset([0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7])
JPEG2000_SYNTAXES = (
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
)


def jpeg_frame_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from the SOF segment of a JPEG or JPEG-LS stream, walking its markers
    up to the first scan; None when there is no SOF before it."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if marker in JPEG_SOF_MARKERS and i + 9 <= len(data):
            return struct.unpack(">HH", data[i + 5 : i + 9])
        if marker == 0xDA:  # start of scan: no frame header came first
            return None
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def check_codestream_dimensions(ds: Dataset) -> None:
    """A compressed frame must not be larger than the header says.

    Codecs allocate what the codestream claims (JPEG 2000's SIZ marker, JPEG's and JPEG-LS's
    SOF segment), not what Rows and Columns say, so a small file with a lying header is a
    decompression bomb. RLE output is sized from Rows and Columns, so it needs no check.
    """
    syntax = ds.file_meta.TransferSyntaxUID
    if syntax in JPEG_SYNTAXES:
        rows, columns = int(ds.Rows), int(ds.Columns)
        for index, fragment in enumerate(generate_frames(ds.PixelData, number_of_frames=frame_count(ds))):
            size = jpeg_frame_size(fragment)
            if size is None:
                raise Rejected(f"frame {index}: no JPEG frame header (SOF) before the scan", code="undecodable")
            if size[0] > rows or size[1] > columns:
                raise Rejected(f"frame {index}: JPEG stream is {size[0]}x{size[1]}, the header says {rows}x{columns}",
                               code="length_mismatch")
        return
    if syntax not in JPEG2000_SYNTAXES:
        return
    rows, columns = int(ds.Rows), int(ds.Columns)
    for index, fragment in enumerate(generate_frames(ds.PixelData, number_of_frames=frame_count(ds))):
        siz = fragment.find(J2K_SIZ_MARKER)
        if siz < 0 or len(fragment) < siz + 24:
            raise Rejected(f"frame {index}: no JPEG 2000 SIZ marker", code="undecodable")
        x_size, y_size, x_offset, y_offset = struct.unpack(">4I", fragment[siz + 8 : siz + 24])
        width, height = x_size - x_offset, y_size - y_offset
        if height > rows or width > columns:
            raise Rejected(
                f"frame {index}: JPEG 2000 codestream is {height}x{width}, the header says {rows}x{columns}",
                code="length_mismatch",
            )


def frame_count(ds: Dataset) -> int:
    """NumberOfFrames, or 1 when absent."""
    return int(ds.get("NumberOfFrames") or 1)
