"""Rejection reasons and notes go to the DLQ, the logs and the trace: they name the attribute, its VR
and its length, never the value (issue 17: a Photometric Interpretation of 'DOE^JOHANNA')."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
from dicom_samples import image_dataset, to_bytes
from pydicom.dataelem import DataElement
from radstream.domain.dicom.decode import _one_line, decode_instance
from radstream.domain.errors import Rejected

NAME = "DOE^JOHANNA"


def _rejected(data: bytes, caplog: pytest.LogCaptureFixture) -> tuple[Rejected, list[str]]:
    caplog.clear()  # building the probe warns (pydicom validates on assignment); only decoding counts
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.DEBUG):
        warnings.simplefilter("always")
        with pytest.raises(Rejected) as info:
            decode_instance(data)
    return info.value, [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]


def test_a_name_as_photometric_interpretation_is_not_in_the_reason_the_logs_or_warnings(caplog) -> None:
    data = to_bytes(image_dataset(np.zeros((4, 4), dtype=np.uint16), PhotometricInterpretation=NAME))
    assert NAME.encode() in data
    error, emitted = _rejected(data, caplog)
    assert error.code == "unsupported_photometric"
    assert error.reason == "unsupported PhotometricInterpretation (CS, 11 characters)"
    assert not [line for line in emitted if "DOE" in line or "JOHANNA" in line]


def test_a_name_as_rows_text_is_named_by_vr_and_length(caplog) -> None:
    ds = image_dataset(np.zeros((4, 4), dtype=np.uint16))
    ds["Rows"] = DataElement(0x00280010, "LO", NAME)
    error, emitted = _rejected(to_bytes(ds), caplog)
    assert error.reason == "Rows (LO, 11 characters) is not an integer 0-65535"
    assert not [line for line in emitted if "JOHANNA" in line]


def test_a_name_as_sop_class_uid_is_not_repeated(caplog) -> None:
    ds = image_dataset(np.zeros((4, 4), dtype=np.uint16))
    del ds.PixelData
    ds.SOPClassUID = "1.2.3.DOE.JOHANNA"
    with pytest.raises(Exception) as info:
        decode_instance(to_bytes(ds, file_format=False))
    assert "JOHANNA" not in str(info.value)


def test_library_messages_lose_their_quoted_values() -> None:
    message = "invalid literal for int() with base 10: 'DOE^JOHANNA' and b'\\x01JO' and \"x\""
    assert _one_line(message) == ("invalid literal for int() with base 10: <11 characters> and <6 characters>"
                                  " and <1 characters>")
