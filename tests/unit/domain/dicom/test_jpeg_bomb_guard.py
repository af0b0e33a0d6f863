"""JPEG and JPEG-LS frames larger than Rows/Columns claim are refused before any decoding."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import generate_frames

from radstream.domain.dicom.codestream import jpeg_frame_size
from radstream.domain.dicom.decode import decode_instance
from radstream.domain.errors import Rejected

FILES = ["SC_rgb_jpeg.dcm", "JPGExtended.dcm", "MR_small_jpeg_ls_lossless.dcm"]


def _path(name: str) -> str:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not in this pydicom's test files")
    return path


@pytest.mark.parametrize("name", FILES)
def test_the_frame_header_matches_rows_and_columns(name: str) -> None:
    ds = pydicom.dcmread(_path(name))
    first = next(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1)))
    assert jpeg_frame_size(first) == (int(ds.Rows), int(ds.Columns))
    assert decode_instance(open(_path(name), "rb").read()).frames  # intact files still decode


def _halve_rows_and_columns(raw: bytes) -> bytes:
    """Edit Rows (0028,0010) and Columns (0028,0011) in the file's bytes (little endian, explicit
    or implicit VR: SC_rgb_jpeg is implicit whatever its meta says), leaving the rest as it was."""
    out = bytearray(raw)
    for tag in (b"\x28\x00\x10\x00", b"\x28\x00\x11\x00"):
        explicit, implicit = tag + b"US\x02\x00", tag + b"\x02\x00\x00\x00"
        element = explicit if explicit in out else implicit
        at = out.index(element) + len(element)
        value = int.from_bytes(out[at:at + 2], "little")
        out[at:at + 2] = (value // 2).to_bytes(2, "little")
    return bytes(out)


@pytest.mark.parametrize("name", FILES)
def test_a_header_smaller_than_the_stream_is_refused(name: str) -> None:
    with pytest.raises(Rejected, match="JPEG stream is") as info:
        decode_instance(_halve_rows_and_columns(open(_path(name), "rb").read()))
    assert info.value.code == "length_mismatch"


def test_streams_without_a_frame_header() -> None:
    assert jpeg_frame_size(b"not a jpeg") is None
    assert jpeg_frame_size(b"\xff\xd8\xff\xda\x00\x08" + b"\x00" * 8) is None  # scan before any SOF
