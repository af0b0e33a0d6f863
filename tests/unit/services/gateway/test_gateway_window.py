"""Window/level from the full-range pixels (D-042): the gateway windows decode's real pixel blob of
the RG1 chest (its stored uint16 values and pixel_transform, D-034) into a PNG it encodes itself,
reads that blob only by digest from the derived area, and refuses anything that is not the
recorded 2-D array in a dtype its transform allows."""

from __future__ import annotations

import asyncio

import aiohttp
import cv2
import numpy as np
import pytest
from gateway_harness import ALL, ingest, make_gateway, serve
from gateway_records import SOP, STUDY, decoded
from radstream.domain.dicom.decode import decode_instance
from radstream.domain.dicom.pixels import PixelTransform, apply_windowing, model_frame
from radstream.services.demo import real_radiographs
from radstream.services.gateway.responses import SECURITY_HEADERS
from radstream.streams.blobstore import DERIVED, RAW, FileBlobStore

BASE = f"/studies/{STUDY}/images/{SOP}"


@pytest.fixture(scope="module")
def rg1() -> tuple[np.ndarray, dict]:
    """RG1's pixel blob as decode stores it (uint16 stored values, 4x smaller to stay quick) and its transform."""
    decoded_rg1 = decode_instance(real_radiographs()[0].read_bytes())
    assert decoded_rg1.transform is not None and decoded_rg1.stored[0].dtype == np.uint16
    return np.ascontiguousarray(decoded_rg1.stored[0][::4, ::4]), decoded_rg1.transform.to_record()


def _with_pixels(gw, store: FileBlobStore, pixels: np.ndarray, sop: str = SOP, ref: dict | None = None,
                 transform: dict | None = None) -> None:
    ref = ref or store.put_array(pixels)
    _, png = cv2.imencode(".png", np.zeros((4, 4), np.uint8))
    display = store.put(png.tobytes(), "image/png", (4, 4), "uint8", area=DERIVED)
    ingest(gw, "ImageDecoded", {**decoded(sop=sop, display=display, rows=pixels.shape[0], columns=pixels.shape[1]),
                                "pixels": ref, "pixel_transform": transform}, offset=len(gw.hub.studies))


def test_a_window_is_applied_to_the_full_range_pixels(tmp_path, rg1: tuple[np.ndarray, dict]) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    stored, transform = rg1
    frame = model_frame(stored, PixelTransform.from_record(transform))  # MONOCHROME1: inverted, bone bright
    center, width = float(np.percentile(frame, 50)), float(np.ptp(frame) / 4)
    expected = np.rint(apply_windowing(frame, center, width, "LINEAR_EXACT", (0, 255))).astype(np.uint8)

    async def scenario() -> None:
        gw = make_gateway(blobs=store)
        _with_pixels(gw, store, stored, transform=transform)
        _with_pixels(gw, store, frame, sop=SOP + "9")  # a float32 model frame, no transform (color, LUT sequences)
        async with serve(gw) as base, aiohttp.ClientSession(headers=ALL) as session:
            async with session.get(f"{base}/studies/{STUDY}") as resp:
                assert (await resp.json())["images"][0]["has_pixels"] is True
            async with session.get(f"{base}{BASE}/pixel-range") as resp:
                values = await resp.json()
            assert values["min"] == float(frame.min()) and values["max"] == float(frame.max())
            assert values["min"] <= values["p1"] < values["p99"] <= values["max"]
            url = f"{base}{BASE}.png?center={center}&width={width}"
            async with session.get(url) as resp:
                assert resp.status == 200 and resp.content_type == "image/png"
                assert all(resp.headers[k] == v for k, v in SECURITY_HEADERS.items())
                got = cv2.imdecode(np.frombuffer(await resp.read(), np.uint8), cv2.IMREAD_UNCHANGED)
                etag = resp.headers["ETag"]
            assert got.dtype == np.uint8 and np.array_equal(got, expected)
            # 8 bits of a narrow window hold detail the display PNG (one fixed window) cannot
            assert len(np.unique(got)) > 200
            async with session.get(url, headers={"If-None-Match": etag}) as resp:
                assert resp.status == 304
            async with session.get(f"{base}{BASE}.png?center={center}&width={width / 2}") as resp:
                other = cv2.imdecode(np.frombuffer(await resp.read(), np.uint8), cv2.IMREAD_UNCHANGED)
            assert not np.array_equal(other, got) and resp.headers["ETag"] != etag
            async with session.get(f"{base}/studies/{STUDY}/images/{SOP}9.png?center={center}&width={width}") as resp:
                same = cv2.imdecode(np.frombuffer(await resp.read(), np.uint8), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(same, expected)  # the stored values and their transform are the model frame

    asyncio.run(scenario())


@pytest.mark.parametrize("query, message", [
    ("center=10", "give both center and width, or neither"),
    ("center=a&width=2", "center and width must be numbers"),
    ("center=10&width=0", "width in (0"),
    ("center=nan&width=5", "center must lie within"),
    ("center=1e9&width=5", "center must lie within"),
])
def test_a_bad_window_is_a_one_line_400(tmp_path, query: str, message: str) -> None:
    store = FileBlobStore(tmp_path / "blobs")

    async def scenario() -> None:
        gw = make_gateway(blobs=store)
        _with_pixels(gw, store, np.zeros((4, 4), np.float32))
        async with serve(gw) as base, aiohttp.ClientSession(headers=ALL) as session:
            async with session.get(f"{base}{BASE}.png?{query}") as resp:
                assert resp.status == 400 and message in (await resp.json())["error"]

    asyncio.run(scenario())


def test_only_the_recorded_float32_array_from_the_derived_area_is_windowed(tmp_path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    good = np.arange(16, dtype=np.float32).reshape(4, 4)
    elsewhere = FileBlobStore(tmp_path / "elsewhere")
    raw_copy = store.put(elsewhere.get(elsewhere.put_array(good * 2)), "application/x-npy", (4, 4), "float32", area=RAW)
    _, png = cv2.imencode(".png", np.zeros((4, 4), np.uint8))
    rescale = {"rescale_slope": 1.0, "rescale_intercept": 0.0, "invert_about": None}
    cases = {  # sop -> (pixel blob ref, pixel_transform)
        SOP + "1": (store.put(png.tobytes(), "image/png", (4, 4), "float32", area=DERIVED), None),  # not an array
        SOP + "2": (store.put_array(good.astype(np.float64)), None),  # float64: not decode's
        SOP + "3": ({**store.put_array(np.zeros((2, 8), np.float32)), "shape": [4, 4]}, None),  # another shape
        SOP + "4": (raw_copy, None),  # the right bytes, in the raw area
        SOP + "5": ({**store.put_array(good), "uri": raw_copy["uri"], "sha256": "f" * 64}, None),  # a uri cannot steer it
        SOP + "6": (store.put_array(good), rescale),  # float with a transform: not stored values
        SOP + "7": (store.put_array(good.astype(np.uint32)), rescale),  # 32-bit stored values: never kept
        SOP + "8": (store.put_array(good.astype(np.uint16)), None),  # stored values without their transform
    }

    async def scenario() -> None:
        gw = make_gateway(blobs=store)
        for sop, (ref, transform) in cases.items():
            _with_pixels(gw, store, good, sop=sop, ref=ref, transform=transform)
        async with serve(gw) as base, aiohttp.ClientSession(headers=ALL) as session:
            for sop in cases:
                for path in (f"{sop}.png?center=8&width=16", f"{sop}/pixel-range"):
                    async with session.get(f"{base}/studies/{STUDY}/images/{path}") as resp:
                        assert resp.status == 404, (sop, path)
                        assert resp.content_type == "application/json"
            # another site's token: the same 404
            async with session.get(f"{base}{BASE}1/pixel-range", headers={"Authorization": "Bearer tok-b"}) as resp:
                assert resp.status == 404

    asyncio.run(scenario())
