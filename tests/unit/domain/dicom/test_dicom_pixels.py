"""The pixel transforms against values computed by hand from the PS3.3 C.11 formulas."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from radstream.domain.dicom.pixels import (
    apply_modality_lut,
    apply_voi_lut,
    apply_windowing,
    convert_to_grayscale,
    modality_value_range,
    pixel_padding_mask,
    stored_value_range,
    to_bone_bright,
)


def grayscale(bits_stored: int = 12, signed: bool = False, **attributes: object) -> Dataset:
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation = 16, bits_stored, int(signed)
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def lut_item(descriptor: list[int], data: list[int]) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = descriptor
    item.LUTData = data
    return item


class TestWindowing:
    # c = 50, w = 11: LINEAR ramps over (44.5, 54.5]; y = ((x - 49.5) / 10 + 0.5) * 255
    @pytest.mark.parametrize(
        ("x", "y"), [(0, 0.0), (44.5, 0.0), (45, 12.75), (50, 140.25), (54, 242.25), (54.5, 255.0), (55, 255.0)]
    )
    def test_linear(self, x: float, y: float) -> None:
        assert apply_windowing(np.array([x]), 50, 11, "LINEAR")[0] == pytest.approx(y)

    # c = 50, w = 10: LINEAR_EXACT ramps over (45, 55]; y = ((x - 50) / 10 + 0.5) * 255
    @pytest.mark.parametrize(("x", "y"), [(45, 0.0), (46, 25.5), (50, 127.5), (52, 178.5), (55, 255.0), (56, 255.0)])
    def test_linear_exact(self, x: float, y: float) -> None:
        assert apply_windowing(np.array([x]), 50, 10, "LINEAR_EXACT")[0] == pytest.approx(y)

    # y = 255 / (1 + exp(-4 (x - 50) / 10))
    @pytest.mark.parametrize(("x", "y"), [(50, 127.5), (55, 224.60325488436), (45, 30.396745115639977)])
    def test_sigmoid(self, x: float, y: float) -> None:
        assert apply_windowing(np.array([x]), 50, 10, "SIGMOID")[0] == pytest.approx(y)

    def test_output_range_is_a_parameter(self) -> None:
        assert apply_windowing(np.array([50.0]), 50, 11, "LINEAR", y_range=(0.0, 1.0))[0] == pytest.approx(0.55)

    @pytest.mark.parametrize(("function", "width"), [("LINEAR", 0.5), ("LINEAR_EXACT", 0), ("SIGMOID", -1), ("CUBIC", 10)])
    def test_invalid_window_raises(self, function: str, width: float) -> None:
        with pytest.raises(ValueError):
            apply_windowing(np.array([1.0]), 50, width, function)


class TestApplyVoiLut:
    def test_first_of_several_windows_by_default(self) -> None:
        ds = grayscale(WindowCenter=[50, 500], WindowWidth=[11, 1000])
        assert apply_voi_lut(np.array([50.0]), ds)[0] == pytest.approx(140.25)
        # second window: ((50 - 499.5) / 999 + 0.5) * 255 = 12.26...
        assert apply_voi_lut(np.array([50.0]), ds, index=1)[0] == pytest.approx((-449.5 / 999 + 0.5) * 255)

    def test_voi_lut_function_from_the_dataset(self) -> None:
        ds = grayscale(WindowCenter=50, WindowWidth=10, VOILUTFunction="SIGMOID")
        assert apply_voi_lut(np.array([55.0]), ds)[0] == pytest.approx(224.60325488436)

    def test_voi_lut_sequence(self) -> None:
        # 4 entries from input 10, 8 bit output; below first -> first entry, above last -> last entry
        ds = grayscale(VOILUTSequence=Sequence([lut_item([4, 10, 8], [0, 85, 170, 255])]))
        x = np.array([5, 10, 11, 12, 13, 100])
        assert apply_voi_lut(x, ds).tolist() == pytest.approx([0, 0, 85, 170, 255, 255])
        assert apply_voi_lut(x, ds, y_range=(0.0, 1.0))[2] == pytest.approx(85 / 255)

    def test_without_window_the_present_range_is_used_ignoring_padding(self) -> None:
        x = np.array([-2000.0, 0.0, 100.0, 200.0])
        padding = np.array([True, False, False, False])
        assert apply_voi_lut(x, grayscale(), mask=padding)[1:].tolist() == pytest.approx([0.0, 127.5, 255.0])


class TestModalityLut:
    def test_rescale(self) -> None:
        ds = grayscale(RescaleSlope=2, RescaleIntercept=-1024)
        out = apply_modality_lut(np.array([0, 1000], dtype=np.uint16), ds)
        assert out.dtype == np.float32
        assert out.tolist() == [-1024.0, 976.0]

    def test_modality_lut_sequence(self) -> None:
        ds = grayscale(ModalityLUTSequence=Sequence([lut_item([3, 0, 16], [100, 200, 300])]))
        ds.ModalityLUTSequence[0].ModalityLUTType = "US"
        assert apply_modality_lut(np.array([0, 1, 2, 5], dtype=np.uint16), ds).tolist() == [100, 200, 300, 300]
        assert modality_value_range(ds) == (100.0, 300.0)

    @pytest.mark.parametrize(
        ("signed", "slope", "intercept", "expected"),
        [(False, 1, -1024, (-1024.0, 3071.0)), (True, 1, 0, (-2048.0, 2047.0)), (False, -1, 0, (-4095.0, 0.0))],
    )
    def test_value_range_covers_every_stored_value(
        self, signed: bool, slope: float, intercept: float, expected: tuple[float, float]
    ) -> None:
        ds = grayscale(12, signed, RescaleSlope=slope, RescaleIntercept=intercept)
        assert modality_value_range(ds) == expected

    def test_stored_value_range(self) -> None:
        assert stored_value_range(grayscale(10)) == (0, 1023)
        assert stored_value_range(grayscale(16, signed=True)) == (-32768, 32767)


class TestBoneBright:
    def test_monochrome1_is_inverted_over_the_full_range(self) -> None:
        ds = grayscale(10, PhotometricInterpretation="MONOCHROME1")
        assert to_bone_bright(np.array([0.0, 100.0, 1023.0]), ds).tolist() == [1023.0, 923.0, 0.0]
        assert to_bone_bright(np.array([0.0, 255.0]), ds, value_range=(0.0, 255.0)).tolist() == [255.0, 0.0]

    def test_monochrome2_is_unchanged(self) -> None:
        x = np.array([0.0, 100.0])
        assert to_bone_bright(x, grayscale(10)) is x


class TestPixelPadding:
    def test_value(self) -> None:
        ds = grayscale(16, signed=True, PixelPaddingValue=-2000)
        assert pixel_padding_mask(np.array([-2000, -1999, 0]), ds).tolist() == [True, False, False]

    def test_range_limit_in_either_order(self) -> None:
        ds = grayscale(PixelPaddingValue=4095, PixelPaddingRangeLimit=4000)
        assert pixel_padding_mask(np.array([3999, 4000, 4095]), ds).tolist() == [False, True, True]

    def test_none_declared(self) -> None:
        assert pixel_padding_mask(np.array([0]), grayscale()) is None


def test_convert_to_grayscale_uses_bt601_luma() -> None:
    ds = grayscale(8, PhotometricInterpretation="RGB")
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    assert convert_to_grayscale(rgb, ds)[0].tolist() == pytest.approx([76.245, 149.685, 29.07, 255.0], rel=1e-6)
