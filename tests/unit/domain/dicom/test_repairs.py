"""Header repairs: each breaks a real file in one way, and the repaired decode equals the intact one.

Each ambiguous case is rejected with a reason that names the ambiguity.
"""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pydicom
import pytest
from dicom_samples import sample_bytes, to_bytes
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian
from radstream.domain.dicom.decode import DecodedInstance, decode_instance
from radstream.domain.dicom.metadata import REPAIRS_KEY
from radstream.domain.errors import Rejected

ROWS_TAG = 0x00280010


def read(name: str) -> Dataset:
    return pydicom.dcmread(BytesIO(sample_bytes(name)))


@pytest.fixture(scope="module")
def intact() -> dict[str, DecodedInstance]:
    return {name: decode_instance(sample_bytes(name)) for name in ("RG1_UNCR.dcm", "MR_small.dcm", "CT_small.dcm")}


def assert_repaired(decoded: DecodedInstance, reference: DecodedInstance, *notes: str) -> None:
    """The same model and display pixels as the intact file, and each note recorded in both places."""
    assert len(decoded.frames) == len(reference.frames)
    for got, want in zip(decoded.frames, reference.frames):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(decoded.display, reference.display):
        np.testing.assert_array_equal(got, want)
    assert len(decoded.repairs) == len(notes)
    for note, expected in zip(decoded.repairs, notes):
        assert expected in note
    assert decoded.metadata[REPAIRS_KEY] == "; ".join(decoded.repairs)


def rejected(ds: Dataset | bytes) -> Rejected:
    with pytest.raises(Rejected) as caught:
        decode_instance(ds if isinstance(ds, bytes) else to_bytes(ds))
    return caught.value


def test_an_intact_file_records_no_repair(intact: dict[str, DecodedInstance]) -> None:
    for decoded in intact.values():
        assert decoded.repairs == []
        assert decoded.metadata[REPAIRS_KEY] is None


def test_bits_stored_missing_is_high_bit_plus_one(intact: dict[str, DecodedInstance]) -> None:
    ds = read("RG1_UNCR.dcm")  # MONOCHROME1, 15 of 16 bits: Bits Allocated would invert over the wrong range
    del ds.BitsStored
    decoded = decode_instance(to_bytes(ds))
    assert_repaired(decoded, intact["RG1_UNCR.dcm"], "BitsStored missing: set to HighBit + 1 = 15")
    assert decoded.metadata["BitsStored"] == 15


def test_bits_stored_and_high_bit_missing_is_ambiguous() -> None:
    ds = read("RG1_UNCR.dcm")
    del ds.BitsStored, ds.HighBit
    error = rejected(ds)
    assert error.code == "missing_attribute"
    assert "ambiguous" in error.reason and "1-16 bits" in error.reason


def test_high_bit_missing_is_bits_stored_minus_one(intact: dict[str, DecodedInstance]) -> None:
    ds = read("MR_small.dcm")
    del ds.HighBit
    assert_repaired(decode_instance(to_bytes(ds)), intact["MR_small.dcm"], "HighBit missing: set to BitsStored - 1 = 15")


def test_samples_per_pixel_missing_with_monochrome_is_one(intact: dict[str, DecodedInstance]) -> None:
    ds = read("MR_small.dcm")
    del ds.SamplesPerPixel
    assert_repaired(decode_instance(to_bytes(ds)), intact["MR_small.dcm"], "SamplesPerPixel missing: set to 1")


def test_photometric_interpretation_missing_is_ambiguous() -> None:
    ds = read("MR_small.dcm")
    del ds.PhotometricInterpretation
    error = rejected(ds)
    assert error.code == "missing_attribute"
    assert "ambiguous" in error.reason and "MONOCHROME1" in error.reason and "MONOCHROME2" in error.reason


def test_pixel_representation_missing_when_no_value_has_the_sign_bit(intact: dict[str, DecodedInstance]) -> None:
    ds = read("MR_small.dcm")  # signed, MONOCHROME2, values 127-2145: both readings are the same image
    del ds.PixelRepresentation
    assert_repaired(decode_instance(to_bytes(ds)), intact["MR_small.dcm"], "PixelRepresentation missing: set to 0")


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("CT_small.dcm", "Pixel Padding Value"),  # padding -2000 is another value when unsigned
        ("RG1_UNCR.dcm", "MONOCHROME1"),  # inverted over a different range
    ],
)
def test_pixel_representation_missing_is_ambiguous(name: str, why: str) -> None:
    ds = read(name)
    del ds.PixelRepresentation
    error = rejected(ds)
    assert error.code == "missing_attribute"
    assert "ambiguous, signed or unsigned" in error.reason and why in error.reason


def test_pixel_representation_missing_with_the_sign_bit_set_is_ambiguous() -> None:
    ds = read("MR_small.dcm")
    pixels = ds.pixel_array.copy()
    pixels[0, 0] = -1
    ds.PixelData = pixels.astype("<i2").tobytes()
    del ds.PixelRepresentation
    error = rejected(ds)
    assert "sign bit (bit 15)" in error.reason


@pytest.mark.parametrize(("keyword", "value"), [("Rows", 1955), ("Columns", 1841)])
def test_rows_or_columns_missing_from_the_pixel_data_length(
    intact: dict[str, DecodedInstance], keyword: str, value: int
) -> None:
    ds = read("RG1_UNCR.dcm")
    delattr(ds, keyword)
    decoded = decode_instance(to_bytes(ds))
    assert_repaired(decoded, intact["RG1_UNCR.dcm"], f"{keyword} missing: set to {value} from the pixel data length")
    assert decoded.metadata[keyword] == value


def test_rows_and_columns_missing_is_ambiguous() -> None:
    ds = read("RG1_UNCR.dcm")
    del ds.Rows, ds.Columns
    error = rejected(ds)
    assert error.code == "missing_dimensions"
    assert "ambiguous" in error.reason


def test_rows_missing_with_a_remainder_or_compressed_data_is_rejected() -> None:
    ds = read("MR_small.dcm")
    del ds.Rows
    ds.PixelData = ds.PixelData + b"\x01\x00"  # 8194 bytes: not whole 128-byte lines
    assert "not a whole number" in rejected(ds).reason
    ds = read("RG1_J2KR.dcm")
    del ds.Rows
    error = rejected(ds)
    assert error.code == "missing_dimensions" and "compressed" in error.reason


def test_trailing_zero_padding_is_trimmed(intact: dict[str, DecodedInstance]) -> None:
    padded = decode_instance(sample_bytes("MR_small_padded.dcm"))  # 8320 bytes for 8192: 128 zero bytes
    assert_repaired(padded, intact["MR_small.dcm"], "PixelData 8320 bytes, the header needs 8192: trimmed 128")
    ds = read("CT_small.dcm")
    ds.PixelData = ds.PixelData + b"\x00" * 6
    assert_repaired(decode_instance(to_bytes(ds)), intact["CT_small.dcm"], "trimmed 6 trailing zero bytes")


def test_trailing_bytes_that_could_be_data_are_rejected() -> None:
    ds = read("MR_small.dcm")
    ds.PixelData = ds.PixelData + b"\x00\x00\x07\x00"
    error = rejected(ds)
    assert error.code == "length_mismatch" and "not zero" in error.reason
    ds = read("MR_small.dcm")
    ds.PixelData = ds.PixelData * 2  # one more whole frame: padding, or a frame Number of Frames omits
    error = rejected(ds)
    assert error.code == "length_mismatch" and "ambiguous" in error.reason


def test_pixel_data_shorter_than_the_header_is_still_truncated() -> None:
    ds = read("MR_small.dcm")
    ds.PixelData = ds.PixelData[:-128]
    assert rejected(ds).code == "truncated"


def implicit_vr_bytes(ds: Dataset) -> bytes:
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True, implicit_vr=True, little_endian=True)
    return buffer.getvalue()


def test_us_written_as_text_in_implicit_vr_is_coerced(intact: dict[str, DecodedInstance]) -> None:
    ds = read("CT_small.dcm")
    ds[ROWS_TAG] = DataElement(ROWS_TAG, "OB", b"128 ")  # implicit VR: the reader sees 4 bytes for one US
    decoded = decode_instance(implicit_vr_bytes(ds))
    assert_repaired(decoded, intact["CT_small.dcm"], "Rows was text '128' in place of a binary US: read as 128")


def test_us_with_a_text_vr_in_explicit_vr_is_coerced(intact: dict[str, DecodedInstance]) -> None:
    ds = read("CT_small.dcm")
    ds[ROWS_TAG] = DataElement(ROWS_TAG, "IS", "128")
    assert_repaired(decode_instance(to_bytes(ds)), intact["CT_small.dcm"], "Rows had VR IS ('128'): read as US 128")


def test_two_byte_text_in_implicit_vr_is_ambiguous() -> None:
    ds = read("MR_small.dcm")
    ds[ROWS_TAG] = DataElement(ROWS_TAG, "OB", b"64")  # also a binary US 13366
    error = rejected(implicit_vr_bytes(ds))
    assert error.code == "malformed_header"
    assert "ambiguous, binary US 13366 or text 64" in error.reason


@pytest.mark.parametrize(
    ("element", "reason"),
    [
        (DataElement(ROWS_TAG, "IS", "64.5"), "not an integer"),  # parses, but not exactly
        (DataElement(ROWS_TAG, "US", [64, 64]), "2 values where one is allowed"),  # a wrong length
    ],
)
def test_values_that_do_not_parse_exactly_are_rejected(element: DataElement, reason: str) -> None:
    ds = read("MR_small.dcm")
    ds[ROWS_TAG] = element
    error = rejected(ds)
    assert error.code == "malformed_header" and reason in error.reason
