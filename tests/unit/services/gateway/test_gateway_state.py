"""Study state folded from events, the JSON and PNG endpoints, and the hub's bounds."""

from __future__ import annotations

import asyncio

import aiohttp
import cv2
import numpy as np
from gateway_harness import ALL, ingest, make_gateway, serve
from gateway_records import (
    SOP,
    STUDY,
    decoded,
    fused,
    fused_box,
    inferred,
    study_result,
)
from radstream.services.gateway import HubLimits
from radstream.streams.blobstore import DERIVED, FileBlobStore


def test_state_follows_the_study_through_every_stage() -> None:
    gw = make_gateway()
    box = fused_box([10, 20, 60, 80])
    low = fused_box([100, 100, 120, 130], score=0.3)
    steps = [("ImageDecoded", decoded(), "received"), ("InferenceResult", inferred(boxes=[box["box"]]), "analysing"),
             ("FindingsFused", fused(boxes=[box, low]), "fused"), ("StudyResult", study_result(boxes=[box, low]), "final")]
    for schema, record, status in steps:
        event = ingest(gw, schema, record)
        assert event.summary["status"] == status
    state = gw.hub.study(STUDY).as_json()
    (img,) = state["images"]
    assert img["models"]["detector-a"]["detections"] == 1
    assert [f["rule_id"] for f in img["findings"]] == ["nodule-detected"]  # the 0.3 box is below threshold
    assert len(img["fused_boxes"]) == 2 and img["status"] == "ANALYSED"
    assert state["model_versions"] == {"detector-a": "1.0.0", "detector-b": "2.1.0"}
    assert state["config_version"] == 3 and state["last_event_id"] == f"{gw.hub.epoch}-4"
    assert "image_url" not in img  # no display blob in these records


def test_study_json_and_display_png_with_etag(tmp_path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    _, png = cv2.imencode(".png", np.full((32, 48), 128, np.uint8))
    display = store.put(png.tobytes(), "image/png", (32, 48), "uint8", area=DERIVED)

    async def scenario() -> None:
        gw = make_gateway(blobs=store)
        ingest(gw, "ImageDecoded", decoded(display=display))
        ingest(gw, "ImageDecoded", decoded(sop=SOP + "9", display={**display, "sha256": "0" * 64}))
        corrupt = store.put(b"\x89PNG\r\n\x1a\n will be overwritten", "image/png", area=DERIVED)
        (store.area_dir(DERIVED) / corrupt["sha256"][:2] / corrupt["sha256"]).write_bytes(b"\x89PNG\r\n\x1a\n changed on disk")
        ingest(gw, "ImageDecoded", decoded(sop=SOP + "8", display=corrupt))
        async with serve(gw) as base, aiohttp.ClientSession(headers=ALL) as session:
            state = await (await session.get(f"{base}/studies/{STUDY}")).json()
            url = next(i["image_url"] for i in state["images"] if i["sop_uid"] == SOP)
            async with session.get(base + url) as resp:
                assert resp.status == 200 and resp.content_type == "image/png"
                assert await resp.read() == png.tobytes()
                etag = resp.headers["ETag"]
            async with session.get(base + url, headers={"If-None-Match": etag}) as resp:
                assert resp.status == 304
            # the digest names no blob this store holds: looked up by digest, so nothing to serve
            async with session.get(f"{base}/studies/{STUDY}/images/{SOP}9.png") as resp:
                assert resp.status == 404
            async with session.get(f"{base}/studies/{STUDY}/images/{SOP}8.png") as resp:
                assert resp.status == 502 and "hash mismatch" in (await resp.json())["error"]
            async with session.get(f"{base}/studies/{STUDY}/images/1.2.3.png") as resp:
                assert resp.status == 404
            async with session.get(f"{base}/studies/9.9.9") as resp:
                assert resp.status == 404

    asyncio.run(scenario())


def test_hub_bounds_studies_and_drops_redeliveries() -> None:
    gw = make_gateway(HubLimits(max_studies=2, max_recent=3))
    for i in range(4):
        ingest(gw, "ImageDecoded", decoded(study=f"{STUDY}.{i}", sop=f"{STUDY}.{i}.1"))
    assert list(gw.hub.studies) == [f"{STUDY}.2", f"{STUDY}.3"]
    assert gw.hub.evicted_upto == 2 and len(gw.hub.recent) == 3
    assert ingest(gw, "ImageDecoded", decoded(study=f"{STUDY}.3", sop=f"{STUDY}.3.1")) is None
    assert gw.hub.duplicates == 1 and gw.hub.seq == 4
