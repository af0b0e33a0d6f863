"""Fixtures for the decode core tests; the builders live in dicom_samples.py."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from dicom_samples import image_dataset, sample_bytes, to_bytes


@pytest.fixture(scope="session")
def rg1_uncr() -> bytes:
    return sample_bytes("RG1_UNCR.dcm")


@pytest.fixture
def make_image() -> Callable[..., bytes]:
    """Encode `image_dataset(pixels, **attributes)` as a Part 10 file."""

    def make(pixels: np.ndarray, **attributes: object) -> bytes:
        return to_bytes(image_dataset(pixels, **attributes))

    return make
