"""Every file in pydicom's and pydicom-data's test data through the decode stage's core.

Each is decoded, not an image, or rejected with a code, exactly as the committed
table says (regenerate it with scripts/make_decode_corpus.py after a deliberate
policy change); nothing raises anything else, nothing is slow, and lossless
copies decode to the pixels of their uncompressed originals.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.fixtures.decode_corpus import corpus_files, decode_outcome, load_table

MAX_SECONDS = 20.0

# (original, lossless copy) by table name; each pair must decode to identical model frames.
LOSSLESS_PAIRS = [
    *[(f"pydicom-data/{s}_UNCR.dcm", f"pydicom-data/{s}_J2KR.dcm") for s in ("RG1", "RG3", "MR2", "US1", "693")],
    ("pydicom-data/emri_small.dcm", "pydicom-data/emri_small_jpeg_2k_lossless.dcm"),
    ("pydicom-data/emri_small.dcm", "pydicom-data/emri_small_jpeg_ls_lossless.dcm"),
    ("pydicom-data/emri_small.dcm", "pydicom-data/emri_small_RLE.dcm"),
    ("pydicom-data/emri_small.dcm", "pydicom-data/emri_small_big_endian.dcm"),
    ("pydicom/MR_small.dcm", "pydicom/MR_small_RLE.dcm"),
    ("pydicom/MR_small.dcm", "pydicom/MR_small_jp2klossless.dcm"),
    ("pydicom/MR_small.dcm", "pydicom/MR_small_jpeg_ls_lossless.dcm"),
    ("pydicom/MR_small.dcm", "pydicom/MR_small_bigendian.dcm"),
    ("pydicom/MR_small.dcm", "pydicom/MR_small_expb.dcm"),
    ("pydicom/MR_small.dcm", "pydicom/MR_small_implicit.dcm"),
    ("pydicom-data/OBXXXX1A.dcm", "pydicom-data/OBXXXX1A_rle.dcm"),
    pytest.param("pydicom-data/OBXXXX1A.dcm", "pydicom-data/OBXXXX1A_expb.dcm", marks=pytest.mark.xfail(
        strict=True, reason="pydicom 3.0.2 apply_color_lut reads a big-endian palette LUT differently")),
    ("pydicom-data/OBXXXX1A_2frame.dcm", "pydicom-data/OBXXXX1A_rle_2frame.dcm"),
    ("pydicom-data/SC_rgb.dcm", "pydicom/SC_rgb_rle.dcm"),
    ("pydicom-data/SC_rgb.dcm", "pydicom-data/SC_rgb_expb.dcm"),
    ("pydicom-data/SC_rgb_2frame.dcm", "pydicom/SC_rgb_rle_2frame.dcm"),
    ("pydicom-data/SC_rgb_16bit.dcm", "pydicom/SC_rgb_rle_16bit.dcm"),
    ("pydicom-data/liver.dcm", "pydicom-data/liver_expb.dcm"),
]
PAIR_MEMBERS = {name for pair in LOSSLESS_PAIRS for name in (pair.values if hasattr(pair, "values") else pair)}
# 693_UNCR says Bits Stored 14, its J2KR copy 16: same stored values, but padding is filled
# with the minimum of the Bits Stored range, so padding pixels are compared by position only.
PADDING_RANGE_DIFFERS = {"pydicom-data/693_J2KR.dcm"}
COLOR_LUMA_ATOL = 1e-3  # BT.601 luma in float32: the summation order may follow the memory layout


def _pair_id(name: object) -> str:
    return str(name).split("/")[-1]


@pytest.fixture(scope="module")
def live() -> dict:
    """Decode the whole corpus once: name -> (row, model frames of pair members, seconds, is color)."""
    results = {}
    for name, path in corpus_files().items():
        row, decoded, seconds = decode_outcome(path)
        keep = decoded is not None and name in PAIR_MEMBERS
        color = keep and decoded.metadata["PhotometricInterpretation"] not in ("MONOCHROME1", "MONOCHROME2")
        results[name] = (row, decoded.frames if keep else None, seconds, color)
    return results


def test_corpus_is_present() -> None:
    files = corpus_files()
    if not any(name.startswith("pydicom-data/") for name in files):
        pytest.skip("pydicom-data is not installed")
    assert len(files) == len(load_table()) > 200


def test_every_outcome_equals_the_committed_table(live: dict) -> None:
    table = load_table()
    if not any(name.startswith("pydicom-data/") for name in live):
        table = {k: v for k, v in table.items() if not k.startswith("pydicom-data/")}
    got = {name: row for name, (row, *_) in live.items()}
    assert set(got) == set(table), "corpus files changed: rerun scripts/make_decode_corpus.py and review"
    differences = {name: (table[name], got[name]) for name in table if table[name] != got[name]}
    assert not differences


def test_every_refusal_has_a_code_and_nothing_is_slow(live: dict) -> None:
    for name, (row, _, seconds, _) in live.items():
        assert row["outcome"] in ("decoded", "not_an_image", "rejected"), name
        assert row["outcome"] == "decoded" or row["code"], name
        assert seconds < MAX_SECONDS, f"{name} took {seconds:.1f} s"


@pytest.mark.parametrize(("original", "copy"), LOSSLESS_PAIRS, ids=_pair_id)
def test_lossless_copies_decode_to_identical_pixels(live: dict, original: str, copy: str) -> None:
    if original not in live or copy not in live:
        pytest.skip("pydicom-data is not installed")
    (row_a, frames_a, _, color), (row_b, frames_b, _, _) = live[original], live[copy]
    assert row_a["outcome"] == row_b["outcome"] == "decoded", (row_a, row_b)
    assert len(frames_a) == len(frames_b)
    for a, b in zip(frames_a, frames_b):
        assert a.shape == b.shape
        if copy in PADDING_RANGE_DIFFERS:
            padding = a == a.min()
            assert np.array_equal(padding, b == b.min())
            a, b = a[~padding], b[~padding]
        if color:
            np.testing.assert_allclose(a, b, rtol=0, atol=COLOR_LUMA_ATOL)
        else:
            np.testing.assert_array_equal(a, b)
