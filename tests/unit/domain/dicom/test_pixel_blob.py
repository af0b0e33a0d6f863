"""decode's lookup path against the general pipeline, on real files: one per branch.

The lookup path keeps the stored values (plus their PixelTransform) as the pixel blob and
computes the display image on the integer data: on the frame's own values (small frames),
through a table over every stored value, or through a clamped affine map checked against
that table. The general path (`_grayscale_frame`) is the PS3.3 C.11 pipeline in float; both
must give the same model frames and the same display bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_samples import sample_bytes
from pydicom.filewriter import dcmwrite
from pydicom.pixels import iter_pixels
from pydicom.uid import ExplicitVRBigEndian

from radstream.domain.dicom import decode
from radstream.domain.dicom.decode import decode_instance, read_dataset
from radstream.domain.dicom.gdcm_jpeg12 import decoding_options
from radstream.domain.dicom.pixels import PixelTransform, model_frame

BRANCHES = {
    "CT_small.dcm": "frame smaller than the domain: direct; signed, padding, no window",
    "MR2_UNCR.dcm": "LINEAR window: the checked affine map",
    "RG1_UNCR.dcm": "MONOCHROME1, Bits Stored 15: the affine map, inverted",
    "693_UNCR.dcm": "signed with padding: the table; padding replaced by a stored value",
    "JPEG2000_UNC.dcm": "no window: a ramp table per frame",
    "liver.dcm": "8-bit, three frames, no window",
    "JPEG-lossy.dcm": "12-bit JPEG Extended through GDCM, no window",
}


def general_path(data: bytes) -> tuple[list[np.ndarray], list[np.ndarray]]:
    ds = read_dataset(data)
    pairs = [decode._grayscale_frame(stored, ds) for stored in iter_pixels(ds, **decoding_options(ds))]
    return [frame for frame, _ in pairs], [shown for _, shown in pairs]


@pytest.mark.parametrize("name", sorted(BRANCHES))
def test_lookup_path_equals_the_general_pipeline(name: str) -> None:
    data = sample_bytes(name)
    decoded = decode_instance(data)
    frames, display = general_path(data)
    assert decoded.transform is not None, "a grayscale rescale image keeps its stored values"
    assert all(blob.dtype.kind in "iu" for blob in decoded.stored)
    assert len(decoded.frames) == len(frames)
    for got, want in zip(decoded.frames, frames):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
    for got, want in zip(decoded.display, display):
        np.testing.assert_array_equal(got, want)


def test_the_radiograph_blob_is_half_the_float_frame() -> None:
    decoded = decode_instance(sample_bytes("RG1_UNCR.dcm"))
    assert decoded.stored[0].dtype == np.uint16
    assert decoded.stored[0].nbytes * 2 == decoded.frames[0].nbytes
    assert decoded.transform == PixelTransform(1.0, 0.0, 32767.0)  # MONOCHROME1 over Bits Stored 15


def test_big_endian_pixels_index_the_tables_by_value() -> None:
    data = sample_bytes("MR2_UNCR.dcm")  # 1024 x 1024: over the domain, so the tables are used
    ds = pydicom.dcmread(BytesIO(data))
    pixels = ds.pixel_array
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    ds.PixelData = pixels.astype(">u2").tobytes()
    buffer = BytesIO()
    dcmwrite(buffer, ds, little_endian=False, implicit_vr=False, force_encoding=True)
    big, little = decode_instance(buffer.getvalue()), decode_instance(data)
    assert big.metadata["TransferSyntaxUID"] == ExplicitVRBigEndian
    np.testing.assert_array_equal(big.display[0], little.display[0])
    np.testing.assert_array_equal(big.frames[0], little.frames[0])


def test_a_modality_lut_sequence_takes_the_general_path() -> None:
    decoded = decode_instance(sample_bytes("mlut_18.dcm"))
    frames, display = general_path(sample_bytes("mlut_18.dcm"))
    assert decoded.transform is None and decoded.stored[0].dtype == np.float32
    np.testing.assert_array_equal(decoded.frames[0], frames[0])
    np.testing.assert_array_equal(decoded.display[0], display[0])


def test_model_frame_of_an_old_float_blob_is_the_blob() -> None:
    blob = np.array([[1.5, -2.0]], dtype=np.float32)
    np.testing.assert_array_equal(model_frame(blob, None), blob)
    assert PixelTransform.from_record(None) is None
    record = PixelTransform(2.0, -1024.0, None).to_record()
    np.testing.assert_array_equal(model_frame(np.array([[0, 10]], np.int16), PixelTransform.from_record(record)),
                                  [[-1024.0, -1004.0]])


def _rewritten(name: str, edit, **attributes: object) -> bytes:
    """A corpus file with its stored values edited by `edit(pixels)` and `attributes` set."""
    ds = pydicom.dcmread(BytesIO(sample_bytes(name)))
    pixels = ds.pixel_array.copy()
    edit(pixels)
    ds.PixelData = pixels.tobytes()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _affine_of(data: bytes) -> tuple[float, float, int | None, int | None]:
    ds = read_dataset(data)
    stored = next(iter_pixels(ds))
    affine = decode.DisplayLookup(ds, stored.dtype)._fixed_window_tables()[1]
    assert affine is not None, "the file must take the checked affine map"
    return affine


def _top_rows_to(value_range: tuple[int, int]):
    def edit(pixels: np.ndarray) -> None:
        low, high = value_range
        pixels[:4] = np.linspace(low, high, pixels[:4].size).reshape(4, -1).astype(pixels.dtype)
    return edit


@pytest.mark.parametrize("name, values, attributes, side", [
    # MONOCHROME1 inverts: values above the map's zero would be mirrored by convertScaleAbs
    ("RG1_UNCR.dcm", (25000, 32767), {}, "high"),
    # a window above the darkest values: values below its zero would be mirrored
    ("MR2_UNCR.dcm", (0, 600), {"WindowCenter": 300, "WindowWidth": 200}, "low"),
])
def test_the_affine_map_clamps_values_beyond_its_zero(name: str, values: tuple[int, int],
                                                       attributes: dict[str, object], side: str) -> None:
    """The clamp before convertScaleAbs is skipped when no value is beyond it (the files as they
    are); here some are, and the display still equals the general pipeline's."""
    data = _rewritten(name, _top_rows_to(values), **attributes)
    _, _, low, high = _affine_of(data)
    if side == "high":
        assert high is not None and values[1] > high > values[0]
    else:
        assert low is not None and values[0] < low < values[1]
    decoded = decode_instance(data)
    frames, display = general_path(data)
    np.testing.assert_array_equal(decoded.display[0], display[0])
    np.testing.assert_array_equal(decoded.frames[0], frames[0])


def test_the_files_as_they_are_need_no_clamp() -> None:
    """RG1 stays below its map's zero: the no-clamp branch is what the other tests compare."""
    data = sample_bytes("RG1_UNCR.dcm")
    _, _, low, high = _affine_of(data)
    assert low is None and high is not None
    assert int(decode_instance(data).stored[0].max()) <= high


@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "MR2_UNCR.dcm", "CT_small.dcm", "693_UNCR.dcm", "liver.dcm"])
def test_the_blob_is_what_pydicom_decodes(name: str) -> None:
    """The frames are read as views and corrected only where a value needs it (`correct_unused_bits`):
    the stored values are still exactly pydicom's, which corrects every frame (padding aside)."""
    data = sample_bytes(name)
    decoded = decode_instance(data)
    ds = pydicom.dcmread(BytesIO(data))
    want = ds.pixel_array.reshape(len(decoded.stored), *decoded.stored[0].shape)
    for got, expected in zip(decoded.stored, want):
        if "PixelPaddingValue" in ds:
            keep = expected != ds.PixelPaddingValue
            got, expected = got[keep], expected[keep]
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def test_unused_high_bits_are_cleared_on_a_full_size_frame() -> None:
    """RG1 (Bits Stored 15) with bit 15 set in its top rows, as a writer may leave it (PS3.5
    8.1.1: the unused bits are undefined): the blob and the display are what pydicom's
    correction and the general pipeline give, the other rows unchanged."""
    def set_bit_15(pixels: np.ndarray) -> None:
        pixels[:8] |= 0x8000

    data = _rewritten("RG1_UNCR.dcm", set_bit_15)
    decoded = decode_instance(data)
    original = decode_instance(sample_bytes("RG1_UNCR.dcm"))
    np.testing.assert_array_equal(decoded.stored[0], original.stored[0])
    np.testing.assert_array_equal(decoded.stored[0], pydicom.dcmread(BytesIO(data)).pixel_array)
    frames, display = general_path(data)
    np.testing.assert_array_equal(decoded.frames[0], frames[0])
    np.testing.assert_array_equal(decoded.display[0], display[0])


def test_signed_values_are_sign_extended_on_a_full_size_frame(make_image: Callable[..., bytes]) -> None:
    """12-bit signed values whose unused bits are zero, not the sign (a full frame, so the
    table path): sign-extended from bit 11 as pydicom does."""
    rng = np.random.default_rng(18)
    values = rng.integers(-2048, 2048, size=(256, 512), dtype=np.int16)
    raw = (values.view(np.uint16) & 0x0FFF).view(np.int16)  # the sign bits above bit 11 cleared
    data = make_image(raw, BitsStored=12, RescaleSlope=1, RescaleIntercept=0)
    decoded = decode_instance(data)
    np.testing.assert_array_equal(decoded.stored[0], values)
    np.testing.assert_array_equal(decoded.stored[0], pydicom.dcmread(BytesIO(data)).pixel_array)
    frames, display = general_path(data)
    np.testing.assert_array_equal(decoded.frames[0], frames[0])
    np.testing.assert_array_equal(decoded.display[0], display[0])


def _dicomdir_cr() -> bytes:
    return (Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests" / "77654033" / "CR1"
            / "6154").read_bytes()


@pytest.mark.parametrize("source", ["RG1_UNCR.dcm", "RG3_UNCR.dcm", "dicomdir CR1/6154"])
def test_monochrome1_radiographs_read_in_place_match_pydicom_and_the_general_pipeline(source: str) -> None:
    """Native radiographs (MONOCHROME1; RG3 is 10-bit) are decoded without copying their pixel
    data: the blob is a view on the file's bytes, and it, the model frame and the display are
    still exactly pydicom's corrected values and the general pipeline's."""
    data = _dicomdir_cr() if source.startswith("dicomdir") else sample_bytes(source)
    decoded = decode_instance(data)
    assert decoded.metadata["PhotometricInterpretation"] == "MONOCHROME1"
    assert np.shares_memory(decoded.stored[0], np.frombuffer(data, dtype=np.uint8))
    np.testing.assert_array_equal(decoded.stored[0], pydicom.dcmread(BytesIO(data)).pixel_array)
    frames, display = general_path(data)
    np.testing.assert_array_equal(decoded.frames[0], frames[0])
    np.testing.assert_array_equal(decoded.display[0], display[0])


def test_encapsulated_and_big_endian_pixel_data_are_read_as_before() -> None:
    """Only a defined-length Pixel Data value is read in place: JPEG 2000 fragments are copied
    out as pydicom reads them, and big-endian frames are byte-swapped copies."""
    j2k = read_dataset(sample_bytes("MR2_J2KR.dcm"))
    assert isinstance(j2k.PixelData, bytes)
    ds = pydicom.dcmread(BytesIO(sample_bytes("MR2_UNCR.dcm")))
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    ds.PixelData = ds.pixel_array.astype(">u2").tobytes()
    buffer = BytesIO()
    dcmwrite(buffer, ds, little_endian=False, implicit_vr=False, force_encoding=True)
    big = buffer.getvalue()
    assert not np.shares_memory(decode_instance(big).stored[0], np.frombuffer(big, dtype=np.uint8))
