"""The gateway serves only what it made (D-024): the forged-record probe of issue 17, the headers on
every response, the same 404 for "not yours" and "no such study", and the SSE cap per identity."""

from __future__ import annotations

import asyncio

import aiohttp
import cv2
import numpy as np
import pydicom
from gateway_harness import ALL, ingest, make_gateway, serve
from gateway_records import SOP, STUDY, decoded
from radstream.services.demo import real_radiographs
from radstream.services.gateway.responses import SECURITY_HEADERS
from radstream.streams.blobstore import DERIVED, FileBlobStore


def test_a_forged_display_pointing_at_a_raw_dicom_blob_is_not_served(tmp_path) -> None:
    """Issue 17 probe 2: the record names a raw DICOM blob (as the receiver stores it) as `text/html`."""
    store = FileBlobStore(tmp_path / "blobs")
    dicom_path = real_radiographs()[0]
    raw = dicom_path.read_bytes()
    patient = str(pydicom.dcmread(dicom_path).PatientID).encode()
    raw_ref = store.put(raw, "application/dicom")
    _, png = cv2.imencode(".png", np.full((8, 8), 7, np.uint8))
    png_ref = store.put(png.tobytes(), "image/png", (8, 8), "uint8", area=DERIVED)
    _, raw_png = cv2.imencode(".png", np.full((8, 8), 3, np.uint8))
    raw_png_ref = store.put(raw_png.tobytes(), "image/png")  # a real PNG, but in the raw area

    async def scenario() -> None:
        gw = make_gateway(blobs=store)
        ingest(gw, "ImageDecoded", decoded(display={**raw_ref, "media_type": "text/html"}))
        ingest(gw, "ImageDecoded", decoded(sop=SOP + "3", display=raw_png_ref))
        ingest(gw, "ImageDecoded", decoded(sop=SOP + "2", display={**png_ref, "media_type": "text/html"}))
        async with serve(gw) as base, aiohttp.ClientSession(headers=ALL) as session:
            async with session.get(f"{base}/studies/{STUDY}/images/{SOP}.png") as resp:
                body = await resp.read()
                assert resp.status == 404 and resp.content_type == "application/json"
                assert raw[:132] not in body and patient not in body
            # only the derived area is served: not even a PNG from the raw area
            async with session.get(f"{base}/studies/{STUDY}/images/{SOP}3.png") as resp:
                assert resp.status == 404 and await resp.read() != raw_png.tobytes()
            # a real PNG is served, and as image/png whatever the record says
            async with session.get(f"{base}/studies/{STUDY}/images/{SOP}2.png") as resp:
                assert resp.status == 200 and resp.content_type == "image/png"
                assert await resp.read() == png.tobytes()

    asyncio.run(scenario())


def test_a_display_uri_outside_its_digest_is_ignored(tmp_path) -> None:
    """The blob is found by its sha256 only: a record cannot steer the read with its `uri`."""
    store = FileBlobStore(tmp_path / "blobs")
    _, png = cv2.imencode(".png", np.full((8, 8), 9, np.uint8))
    png_ref = store.put(png.tobytes(), "image/png", area=DERIVED)
    other = store.put(b"\x89PNG\r\n\x1a\n not the same blob", "image/png", area=DERIVED)

    async def scenario() -> None:
        gw = make_gateway(blobs=store)
        ingest(gw, "ImageDecoded", decoded(display={**png_ref, "uri": other["uri"]}))
        async with serve(gw) as base, aiohttp.ClientSession(headers=ALL) as session, \
                session.get(f"{base}/studies/{STUDY}/images/{SOP}.png") as resp:
            assert resp.status == 200 and await resp.read() == png.tobytes()

    asyncio.run(scenario())


def test_every_response_carries_the_security_headers(tmp_path) -> None:
    async def scenario() -> None:
        gw = make_gateway(blobs=FileBlobStore(tmp_path / "blobs"), heartbeat_s=0.05)
        ingest(gw, "ImageDecoded", decoded())
        async with serve(gw) as base, aiohttp.ClientSession() as session:
            paths = [("/", {}), ("/static/viewer.js", {}), ("/static/viewer.css", {}), ("/healthz", {}),
                     ("/studies", {}), ("/studies", ALL), (f"/studies/{STUDY}", ALL), ("/studies/9.9", ALL),
                     (f"/studies/{STUDY}/images/{SOP}.png", ALL), ("/nowhere", {})]
            for path, headers in paths:
                async with session.get(base + path, headers=headers) as resp:
                    for name, value in SECURITY_HEADERS.items():
                        assert resp.headers.get(name) == value, (path, resp.status, name)
            async with session.get(f"{base}/events", headers=ALL) as resp:  # a stream, prepared before any event
                assert resp.headers["Content-Security-Policy"] == "default-src 'self'; frame-ancestors 'none'"
                assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert SECURITY_HEADERS["Referrer-Policy"] == "no-referrer"

    asyncio.run(scenario())


def test_not_yours_streams_like_a_study_with_no_events() -> None:
    async def scenario() -> None:
        gw = make_gateway(heartbeat_s=0.05)
        ingest(gw, "ImageDecoded", decoded(site="SITE_A"))
        async with serve(gw) as base, aiohttp.ClientSession() as session:
            seen: dict[str, bytes] = {}
            for study in (STUDY, "9.9.9"):
                async with session.get(f"{base}/studies/{study}/events?access_token=tok-b") as resp:
                    assert resp.status == 200
                    chunks = b""
                    while b": ping" not in chunks:  # the first heartbeat: the replay is over
                        chunks += await asyncio.wait_for(resp.content.readany(), 5)
                    seen[study] = chunks.split(b"\n\n", 1)[1].split(b": ping")[0]
            assert seen[STUDY] == seen["9.9.9"] == b""
            async with session.get(f"{base}/studies/{STUDY}/events?access_token=tok-a") as resp:
                chunks = b""
                while b"event: image.decoded" not in chunks:
                    chunks += await asyncio.wait_for(resp.content.readany(), 5)

    asyncio.run(scenario())


def test_event_streams_are_capped_per_identity() -> None:
    async def scenario() -> None:
        gw = make_gateway(heartbeat_s=0.05, max_streams_per_identity=2)
        async with serve(gw) as base, aiohttp.ClientSession() as session:
            first = await session.get(f"{base}/events?access_token=tok-a")
            second = await session.get(f"{base}/studies/{STUDY}/events?access_token=tok-a")
            assert first.status == second.status == 200
            async with session.get(f"{base}/events?access_token=tok-a") as third:
                assert third.status == 429 and "2 open event streams" in (await third.json())["error"]
            async with session.get(f"{base}/events?access_token=tok-b") as other:
                assert other.status == 200  # another identity has its own allowance
            first.close()
            tok_a = gw.auth.authenticate("tok-a").subject
            for _ in range(100):  # the server notices the closed socket on its next heartbeat write
                if gw.quota.open.get(tok_a, 0) < 2:
                    break
                await asyncio.sleep(0.05)
            async with session.get(f"{base}/events?access_token=tok-a") as again:
                assert again.status == 200
            second.close()
            health = await (await session.get(f"{base}/healthz")).json()
            assert health["streams_refused"] == 1

    asyncio.run(scenario())


def test_a_study_belongs_to_its_first_site() -> None:
    """Issue 17 probe 1 (site flip), in the gateway: a SITE_B record for a SITE_A study must not show
    the study to SITE_B, nor hide it from SITE_A."""

    async def scenario() -> None:
        gw = make_gateway(heartbeat_s=0.05)
        ingest(gw, "ImageDecoded", decoded(site="SITE_A"))
        assert ingest(gw, "ImageDecoded", decoded(sop=SOP + "7", site="SITE_B"), offset=1) is None
        assert gw.hub.study(STUDY).site == "SITE_A" and len(gw.hub.study(STUDY).images) == 1
        async with serve(gw) as base, aiohttp.ClientSession() as session:
            async with session.get(f"{base}/studies?access_token=tok-b") as resp:
                assert (await resp.json())["studies"] == []
            async with session.get(f"{base}/studies/{STUDY}?access_token=tok-b") as resp:
                assert resp.status == 404
            async with session.get(f"{base}/studies?access_token=tok-a") as resp:
                assert [s["study_uid"] for s in (await resp.json())["studies"]] == [STUDY]
            async with session.get(f"{base}/studies/{STUDY}?access_token=tok-a") as resp:
                state = await resp.json()
                assert state["site"] == "SITE_A" and [i["sop_uid"] for i in state["images"]] == [SOP]
            async with session.get(f"{base}/events?access_token=tok-b") as resp:  # replay: nothing of it
                chunks = b""
                while b": ping" not in chunks:
                    chunks += await asyncio.wait_for(resp.content.readany(), 5)
                assert b"event:" not in chunks
            health = await (await session.get(f"{base}/healthz")).json()
            assert health["site_conflicts_ignored"] == 1

    asyncio.run(scenario())
