"""decode_instance end to end on real radiographs and on crafted bad input."""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import pydicom
import pytest
from dicom_samples import image_dataset, sample_bytes, to_bytes
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, MPEG2MPML

from radstream.domain.dicom import decode
from radstream.domain.dicom.decode import DecodeLimits, decode_instance
from radstream.domain.errors import NotAnImage, Rejected, StageError

MakeImage = Callable[..., bytes]


@pytest.mark.parametrize(("plain", "jpeg2000"), [("RG1_UNCR.dcm", "RG1_J2KR.dcm"), ("RG3_UNCR.dcm", "RG3_J2KR.dcm")])
def test_lossless_jpeg2000_decodes_identically_to_uncompressed(plain: str, jpeg2000: str) -> None:
    expected, actual = decode_instance(sample_bytes(plain)), decode_instance(sample_bytes(jpeg2000))
    assert len(expected.frames) == len(actual.frames) == 1
    assert actual.frames[0].dtype == np.float32 and actual.frames[0].ndim == 2
    np.testing.assert_array_equal(actual.frames[0], expected.frames[0])
    np.testing.assert_array_equal(actual.display[0], expected.display[0])
    assert actual.metadata["TransferSyntaxUID"] == JPEG2000Lossless


def test_rg1_monochrome1_chest_has_bright_bone(rg1_uncr: bytes) -> None:
    # Regions read off the rendered image (1955 x 1841, PA chest): spine and
    # mediastinum at columns 850-1000, lung fields at rows 250-550 either side.
    decoded = decode_instance(rg1_uncr)
    for image in (decoded.frames[0], decoded.display[0].astype(np.float32)):
        spine = image[400:1000, 850:1000].mean()
        lungs = np.concatenate([image[250:550, 300:550].ravel(), image[250:550, 1150:1400].ravel()]).mean()
        assert spine > lungs * 1.1
    assert decoded.display[0].dtype == np.uint8


def test_monochrome1_is_inverted_over_the_bits_stored_range(rg1_uncr: bytes) -> None:
    stored = pydicom.dcmread(pydicom.filebase.DicomBytesIO(rg1_uncr)).pixel_array  # Bits Stored 15
    np.testing.assert_array_equal(decode_instance(rg1_uncr).frames[0], 32767.0 - stored)


def test_monochrome2_with_rescale_is_not_inverted(make_image: MakeImage) -> None:
    pixels = np.array([[0, 100], [1000, 4095]], dtype=np.uint16)
    decoded = decode_instance(make_image(pixels, BitsStored=12, RescaleSlope=1, RescaleIntercept=-1024))
    assert decoded.frames[0].tolist() == [[-1024.0, -924.0], [-24.0, 3071.0]]


def test_bits_stored_masks_unused_high_bits(make_image: MakeImage) -> None:
    pixels = np.array([[0xF000 | 5, 0x0FFF]], dtype=np.uint16)
    assert decode_instance(make_image(pixels, BitsStored=12)).frames[0].tolist() == [[5.0, 4095.0]]


def test_pixel_representation_sign_extends(make_image: MakeImage) -> None:
    pixels = np.array([[0x0FFF, 0x0800, 0x07FF]], dtype=np.uint16)  # 12-bit two's complement
    decoded = decode_instance(make_image(pixels.view(np.int16), BitsStored=12))
    assert decoded.frames[0].tolist() == [[-1.0, -2048.0, 2047.0]]


def test_pixel_padding_is_set_to_the_minimum(make_image: MakeImage) -> None:
    pixels = np.array([[-2000, 0], [500, 1000]], dtype=np.int16)
    decoded = decode_instance(make_image(pixels, PixelPaddingValue=-2000, RescaleSlope=1, RescaleIntercept=0))
    assert decoded.frames[0][0, 0] == -32768.0
    assert decoded.display[0].tolist() == [[0, 0], [128, 255]]  # window over the unpadded values


def test_display_uses_the_first_window(make_image: MakeImage) -> None:
    pixels = np.array([[44, 50, 55]], dtype=np.uint16)
    decoded = decode_instance(make_image(pixels, WindowCenter=[50, 5000], WindowWidth=[11, 100]))
    assert decoded.display[0].tolist() == [[0, 140, 255]]


def test_sr_is_not_an_image() -> None:
    with pytest.raises(NotAnImage, match="not an image: Comprehensive SR Storage"):
        decode_instance(sample_bytes("test-SR.dcm"))


@pytest.mark.parametrize("data", [b"", b"\x00" * 10, random.Random(7).randbytes(50_000)])
def test_random_bytes_are_not_dicom(data: bytes) -> None:
    with pytest.raises(Rejected) as caught:
        decode_instance(data)
    assert caught.value.code == "not_dicom"


@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "RG1_J2KR.dcm"])
@pytest.mark.parametrize("cut", ["header", "pixels"])
def test_truncated_files_are_rejected(name: str, cut: str) -> None:
    data = sample_bytes(name)
    with pytest.raises(Rejected) as caught:
        decode_instance(data[:5000] if cut == "header" else data[: len(data) // 2])
    assert caught.value.code == "truncated"
    assert "truncated" in caught.value.reason


def test_image_cut_at_an_element_boundary_before_pixel_data(rg1_uncr: bytes) -> None:
    pixel_data = pydicom.dcmread(pydicom.filebase.DicomBytesIO(rg1_uncr)).get_item(0x7FE00010)
    header_end = pixel_data.value_tell - 12  # explicit VR OW: tag, VR, reserved, 4-byte length
    with pytest.raises(Rejected) as caught:
        decode_instance(rg1_uncr[:header_end])
    assert caught.value.code == "missing_pixel_data"


def test_huge_header_is_rejected_before_any_pixel_is_decoded(
    make_image: MakeImage, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded_any: list[bool] = []
    monkeypatch.setattr(decode, "iter_pixels", lambda *a, **k: decoded_any.append(True) or iter(()))
    ds = image_dataset(np.zeros((4, 4), dtype=np.uint16), Rows=60000, Columns=60000)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 60])  # a few bytes claiming 7 GB
    ds["PixelData"].VR = "OB"
    with pytest.raises(Rejected, match="60000x60000") as caught:
        decode_instance(to_bytes(ds))
    assert caught.value.code == "too_large"
    with pytest.raises(Rejected, match="byte limit"):
        decode_instance(make_image(np.zeros((64, 64), dtype=np.uint16)), DecodeLimits(max_bytes=4096))
    assert decoded_any == []


def test_jpeg2000_codestream_larger_than_the_header_is_rejected() -> None:
    ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(sample_bytes("RG3_J2KR.dcm")))
    ds.Rows, ds.Columns = 100, 100  # the codestream still says 1760 x 1760
    with pytest.raises(Rejected, match="1760x1760") as caught:
        decode_instance(to_bytes(ds))
    assert caught.value.code == "length_mismatch"


@pytest.mark.parametrize(
    ("attributes", "code"),
    [
        ({"Rows": None, "Columns": None}, "missing_dimensions"),  # one alone is repaired (test_repairs)
        ({"PhotometricInterpretation": "HSV"}, "unsupported_photometric"),
        ({"BitsStored": 17, "BitsAllocated": 32}, "unsupported_bit_depth"),
        ({"SamplesPerPixel": 3}, "invalid_samples"),
    ],
)
def test_header_rejections(make_image: MakeImage, attributes: dict[str, object], code: str) -> None:
    with pytest.raises(Rejected) as caught:
        decode_instance(make_image(np.zeros((2, 2), dtype=np.uint16), **attributes))
    assert caught.value.code == code


def test_pixel_data_longer_than_the_header_says(make_image: MakeImage) -> None:
    with pytest.raises(Rejected) as caught:
        decode_instance(make_image(np.zeros((4, 4), dtype=np.uint16), Rows=2))
    assert caught.value.code == "length_mismatch"


def test_unsupported_transfer_syntax() -> None:
    ds = image_dataset(np.zeros((2, 2), dtype=np.uint8))
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.PixelData = encapsulate([b"\x00" * 16])
    with pytest.raises(Rejected, match="MPEG2") as caught:
        decode_instance(to_bytes(ds))
    assert caught.value.code == "unsupported_transfer_syntax"


def test_multi_frame_split_or_reject() -> None:
    data = sample_bytes("emri_small.dcm")
    decoded = decode_instance(data)
    assert len(decoded.frames) == len(decoded.display) == 10
    with pytest.raises(Rejected) as caught:
        decode_instance(data, DecodeLimits(multi_frame="reject"))
    assert caught.value.code == "multi_frame"
    with pytest.raises(Rejected, match="frame limit"):
        decode_instance(data, DecodeLimits(max_frames=5))


def test_color_to_bt601_luma_or_reject() -> None:
    data = sample_bytes("SC_rgb.dcm")
    rgb = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data)).pixel_array.astype(np.float32)
    decoded = decode_instance(data)
    np.testing.assert_allclose(decoded.frames[0], rgb @ np.array([0.299, 0.587, 0.114], np.float32), rtol=1e-6)
    with pytest.raises(Rejected) as caught:
        decode_instance(data, DecodeLimits(color="reject"))
    assert caught.value.code == "color"


def test_dataset_without_preamble_is_read_and_its_syntax_inferred() -> None:
    ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(sample_bytes("MR_small.dcm")))
    del ds.file_meta
    ds.preamble = None
    data = to_bytes(ds, file_format=False)
    assert data[:2] == b"\x08\x00"
    decoded = decode_instance(data)
    assert decoded.frames[0].shape == (64, 64)
    assert decoded.metadata["TransferSyntaxUID"] == "1.2.840.10008.1.2.1"


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about every corrupted value
def test_corrupted_bytes_never_escape_as_raw_exceptions() -> None:
    original = sample_bytes("MR_small.dcm")
    rng = random.Random(2024)
    for _ in range(200):
        data = bytearray(original)
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(128, len(data))] = rng.randrange(256)
        try:
            decode_instance(bytes(data))
        except StageError:
            pass  # a Rejected/NotAnImage with a reason is the contract


def test_limits_validate_their_policies() -> None:
    with pytest.raises(ValueError):
        DecodeLimits(color="sepia")  # type: ignore[arg-type]
