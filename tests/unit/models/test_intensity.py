"""The robust scale from the stored integers (a histogram and a table) against the float path.

`robust_scale_stored` must give exactly `robust_scale(model_frame(stored, transform))`: the
preprocess stage uses it instead, so any difference would change every tensor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from radstream.domain.dicom.decode import decode_instance
from radstream.domain.dicom.pixels import PixelTransform, model_frame
from radstream.models.intensity import frame_percentiles, robust_scale_stored, stored_histogram
from radstream.models.profile import ROBUST_PERCENTILES, robust_scale, robust_window

# one file per branch of decode's lookup path (tests/unit/domain/dicom/test_pixel_blob.py)
FILES = ["CT_small.dcm", "MR2_UNCR.dcm", "RG1_UNCR.dcm", "693_UNCR.dcm", "JPEG2000_UNC.dcm", "liver.dcm"]


def _assert_same_as_the_float_path(stored: np.ndarray, transform: PixelTransform | None) -> None:
    want = robust_scale(model_frame(stored, transform))
    got = robust_scale_stored(stored, transform)
    assert got is not None and got.dtype == np.float32 and got.shape == stored.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", FILES)
def test_real_files_scale_bit_for_bit_as_the_model_frame(name: str) -> None:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not in pydicom's test data (install pydicom-data)")
    decoded = decode_instance(Path(str(path)).read_bytes())
    assert decoded.transform is not None
    for stored in decoded.stored:
        _assert_same_as_the_float_path(stored, decoded.transform)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16, ">u2", ">i2"])
@pytest.mark.parametrize("transform", [
    None,
    PixelTransform(),
    PixelTransform(0.5, -1024.0),
    PixelTransform(1.0, 0.0, 32767.0),  # MONOCHROME1: the order of the values is reversed
    PixelTransform(-2.5, 3.0),
    PixelTransform(1e-3, 0.1, 7.0),  # float32 rounding merges neighbouring stored values
])
def test_every_integer_dtype_and_transform(dtype, transform: PixelTransform | None) -> None:
    rng = np.random.default_rng(7)
    info = np.iinfo(np.dtype(dtype))
    stored = rng.integers(info.min, info.max, size=(97, 131), endpoint=True).astype(dtype)
    stored[:20, :] = info.min  # a collimated edge: many pixels on one value
    stored[-3:, :] = info.max
    _assert_same_as_the_float_path(stored, transform)


@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (2, 3), (13, 17), (300, 1)])
def test_small_images_interpolate_as_numpy(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    _assert_same_as_the_float_path(rng.integers(0, 4096, size=shape).astype(np.uint16), PixelTransform(1.0, -7.0))


def test_a_flat_image_scales_to_zeros_as_before() -> None:
    stored = np.full((40, 30), 1234, dtype=np.uint16)
    got = robust_scale_stored(stored, PixelTransform())
    assert got is not None and not got.any()
    np.testing.assert_array_equal(got, robust_scale(model_frame(stored, PixelTransform())))


def test_a_float_blob_or_a_color_image_takes_the_general_path() -> None:
    assert robust_scale_stored(np.zeros((8, 8), dtype=np.float32), None) is None
    assert robust_scale_stored(np.zeros((8, 8, 3), dtype=np.uint8), None) is None
    assert robust_scale_stored(np.zeros((8, 8), dtype=np.int32), PixelTransform()) is None


@pytest.mark.parametrize("dtype,bins", [(np.uint8, 256), (np.uint16, 65536)])
def test_the_histogram_counts_every_code_exactly(dtype, bins: int) -> None:
    rng = np.random.default_rng(3)
    codes = rng.integers(0, bins, size=(211, 307), dtype=dtype)
    codes[0, :2] = [0, bins - 1]
    np.testing.assert_array_equal(stored_histogram(codes, bins), np.bincount(codes.ravel(), minlength=bins))


def test_percentiles_from_counts_are_numpys() -> None:
    rng = np.random.default_rng(11)
    for n_values in (1, 2, 5, 200):
        values = rng.normal(size=n_values).astype(np.float32)
        counts = rng.integers(0, 50, size=n_values)
        counts[0] += 1
        expanded = np.repeat(values, counts)
        got = frame_percentiles(values, counts, int(counts.sum()))
        want = np.percentile(expanded, list(ROBUST_PERCENTILES))
        assert got == tuple(want) and got == robust_window(expanded)
