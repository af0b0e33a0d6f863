"""Real JPEG files of pydicom's test data, and copies whose scan no codec can decode (tests only)."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pydicom

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
JPEG_LOSSY = TEST_FILES / "JPEG-lossy.dcm"  # 12-bit JPEG Extended: GDCM alone decodes it
JPEG_BASELINE = TEST_FILES / "SC_rgb_jpeg_dcmtk.dcm"  # tried by two plugins (Pillow, pylibjpeg)


def broken_scan(path: Path = JPEG_LOSSY) -> bytes:
    """The file with the scan header after its SOS marker overwritten: every plugin fails."""
    ds = pydicom.dcmread(path)
    data = bytearray(ds.PixelData)
    sos = data.find(b"\xff\xda")
    data[sos + 2 : sos + 14] = b"\x00\x01\xff\x00" * 3
    ds.PixelData = bytes(data)
    buffer = BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()
