"""12-bit JPEG Extended (pydicom's JPEG-lossy.dcm) decodes through GDCM to dcmtk's values.

The reference is dcmtk's `dcmdjpeg` (a real, independent decoder, installed by .ci/run),
not a number written down here.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from radstream.domain.dicom.decode import decode_instance
from radstream.domain.errors import Rejected
from tests.jpeg_extended import JPEG_BASELINE, JPEG_LOSSY, broken_scan


@pytest.mark.skipif(shutil.which("dcmdjpeg") is None, reason="dcmtk is not installed (.ci/run installs it)")
def test_jpeg_lossy_decodes_to_the_values_dcmtk_decodes(tmp_path: Path) -> None:
    reference = tmp_path / "dcmdjpeg.dcm"
    subprocess.run(["dcmdjpeg", str(JPEG_LOSSY), str(reference)], check=True, capture_output=True)
    expected = pydicom.dcmread(reference).pixel_array
    decoded = decode_instance(JPEG_LOSSY.read_bytes())
    assert decoded.metadata["BitsStored"] == 12 and decoded.metadata["TransferSyntaxUID"] == "1.2.840.10008.1.2.4.51"
    np.testing.assert_array_equal(decoded.stored[0], expected)
    np.testing.assert_array_equal(decoded.frames[0], expected.astype(np.float32))


@pytest.mark.parametrize("path", [JPEG_LOSSY, JPEG_BASELINE], ids=["gdcm", "pillow-and-pylibjpeg"])
def test_an_undecodable_scan_is_one_reason_and_no_logged_traceback(path: Path, caplog: pytest.LogCaptureFixture,
                                                                   capfd: pytest.CaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with pytest.raises(Rejected) as info:
        decode_instance(broken_scan(path))
    assert info.value.code == "undecodable" and "\n" not in info.value.reason
    assert not [r for r in caplog.records if r.exc_info], "a plugin's traceback was logged at INFO"
    assert capfd.readouterr().err == ""  # GDCM's libjpeg notes went to the DEBUG log, not to fd 2
