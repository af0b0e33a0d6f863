"""The viewer in headless Chromium against a real gateway (HTTP + SSE) fed with injected events.

Asserts on the DOM (worklist rows, box overlays with their rule ids, QC flags,
versions) and on live updates while the page is open; screenshots land in tmp_path.
The pipeline itself is covered by tests/integration/test_gateway.py; here the
events are injected so the box counts are exact.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from aiohttp import web
from radstream.services.gateway import Authenticator, EventHub, Gateway, create_app
from radstream.services.gateway.events import KIND_BY_SCHEMA, Position
from radstream.streams.blobstore import DERIVED, FileBlobStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "services" / "gateway"))
from gateway_records import decoded, fused, fused_box, inferred, override, study_result
from tests.browser import BROWSER_SKIPS, Page, expect, sync_playwright, launch_chromium

pytestmark = [pytest.mark.integration, *BROWSER_SKIPS]
TOKEN = "tok-viewer"
STUDY_A, STUDY_B, STUDY_C = "1.2.826.0.1.77.1", "1.2.826.0.1.77.2", "1.2.826.0.1.77.3"


class RunningGateway:
    """The aiohttp app on its own loop in a thread, so the test can drive the browser synchronously."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> RunningGateway:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(create_app(self.gateway), handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    def ingest(self, schema: str, record: dict) -> None:
        kind = KIND_BY_SCHEMA[schema]

        async def run() -> None:
            self.gateway.hub.ingest(kind, record, Position(kind, 0, self.gateway.hub.seq))

        asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def stop(self) -> None:
        if self._runner:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def _display_png(store: FileBlobStore) -> dict:
    """A windowed-looking 256x256 radiograph stand-in: a gradient with two bright blobs."""
    y, x = np.mgrid[0:256, 0:256]
    img = (40 + 0.4 * y).astype(np.float32)
    for cx, cy in ((60, 70), (170, 150)):
        img += 120 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 300.0)
    _, png = cv2.imencode(".png", np.clip(img, 0, 255).astype(np.uint8))
    return store.put(png.tobytes(), "image/png", (256, 256), "uint8", area=DERIVED)


BOXES = [fused_box([40, 50, 80, 90], score=0.91), fused_box([150, 130, 190, 170], score=0.74),
         fused_box([200, 20, 230, 50], score=0.31)]  # the last one is below the 0.5 threshold: no finding


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    store = FileBlobStore(tmp_path / "blobs")
    display = _display_png(store)
    running = RunningGateway(Gateway(EventHub(), Authenticator({TOKEN: None}), store)).start()
    sop_a, sop_b = STUDY_A + ".1", STUDY_B + ".1"
    running.ingest("ImageDecoded", decoded(study=STUDY_A, sop=sop_a, display=display))
    running.ingest("InferenceResult", inferred(study=STUDY_A, sop=sop_a, boxes=[b["box"] for b in BOXES]))
    running.ingest("FindingsFused", fused(study=STUDY_A, sop=sop_a, boxes=BOXES, display=display))
    running.ingest("ImageDecoded", decoded(study=STUDY_B, sop=sop_b, display=display, site="SITE_B"))
    running.ingest("StudyResult", study_result(study=STUDY_B, sops=[sop_b], site="SITE_B", not_analysable=True))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            pg = browser.new_page(viewport={"width": 1400, "height": 900})
            pg.set_default_timeout(15000)
            yield pg
        finally:
            browser.close()


def _login(page: Page, url: str, token: str) -> None:
    page.goto(url + "/")
    page.fill("#token", token)
    page.click("#login button[type=submit]")


def test_worklist_study_view_and_live_updates(gateway: RunningGateway, page: Page, tmp_path: Path) -> None:
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    _login(page, gateway.url, TOKEN)
    rows = page.locator("#worklist tbody tr.study-row")
    expect(rows).to_have_count(2)
    expect(page.locator("#connection")).to_have_text("live")
    row_a = page.locator(f'tr.study-row[data-study-uid="{STUDY_A}"]')
    expect(row_a.locator(".status")).to_have_text("fused")
    expect(row_a.locator(".findings")).to_contain_text("2 (nodule)")
    assert page.evaluate("sessionStorage.getItem('radstream.token')") == TOKEN

    row_a.click()
    boxes = page.locator("#images svg g.box")
    # findings first: only the two boxes a rule turned into findings are drawn; the candidate waits for the toggle
    expect(boxes).to_have_count(2)
    expect(page.locator('#images svg g.box[data-rule="nodule-detected"]')).to_have_count(2)
    expect(page.locator("#images svg g.box.no-finding")).to_have_count(0)
    expect(page.locator("#candidate-count")).to_have_text("(1)")
    page.check("#show-candidates")
    expect(boxes).to_have_count(3)
    expect(page.locator("#images svg g.box.no-finding")).to_have_count(1)
    items = page.locator("#images .box-item")
    expect(items.nth(0).locator(".rule")).to_contain_text("rule nodule-detected v1")
    expect(items.nth(0).locator(".confidence")).to_contain_text("calibrated confidence 0.910")
    expect(items.nth(0).locator(".sources")).to_have_text("models: detector-a 0.91, detector-b 0.81")
    expect(items.nth(2)).to_contain_text("below threshold: no finding")
    expect(page.locator("#study-meta .meta-model-versions")).to_have_text("detector-a 1.0.0, detector-b 2.1.0")
    expect(page.locator("#study-meta .meta-config-version")).to_have_text("v3")
    page.wait_for_function("document.querySelector('#images img').naturalWidth === 256")
    # the token never lands in a URL: EventSource and <img> carry a ticket (POST /session/ticket)
    assert not [u for u in urls if TOKEN in u or "access_token" in u], urls
    assert any("/events?ticket=" in u for u in urls) and any(".png?ticket=" in u for u in urls), urls
    # the overlay is scaled to the image: the first box's left edge sits at 40/256 of the image width
    img_box = page.locator("#images img").bounding_box()
    rect_box = boxes.nth(0).locator("rect").bounding_box()
    assert abs((rect_box["x"] - img_box["x"]) / img_box["width"] - 40 / 256) < 0.02
    page.screenshot(path=str(tmp_path / "study-fused.png"), full_page=True)

    # live, while the page is open: the study's final result adds a fourth box; a new study arrives
    final_boxes = BOXES + [fused_box([100, 200, 140, 240], score=0.66)]
    gateway.ingest("StudyResult", study_result(study=STUDY_A, sops=[STUDY_A + ".1"], boxes=final_boxes))
    gateway.ingest("ImageDecoded", decoded(study=STUDY_C, sop=STUDY_C + ".1"))
    expect(page.locator("#study-status")).to_have_text("final (expected_count_reached)")
    expect(boxes).to_have_count(4)
    expect(page.locator('#images svg g.box[data-rule="nodule-detected"]')).to_have_count(3)
    expect(rows).to_have_count(3)
    expect(row_a.locator(".status")).to_have_text("final")
    page.screenshot(path=str(tmp_path / "study-final.png"), full_page=True)

    # live: a radiologist rejects the first finding and confirms the second (findings.overrides)
    at = 1_764_000_000_000
    gateway.ingest("FindingOverride", override(BOXES[0], study=STUDY_A, by="dr-house", reason="rib crossing",
                                               created_at=at))
    rejected = page.locator("#images .box-item.overridden.rejected")
    expect(rejected).to_have_count(1)
    expect(rejected.locator(".override")).to_contain_text("rejected by dr-house at ")
    expect(rejected.locator(".override")).to_contain_text(": rib crossing")
    assert rejected.locator("strong").evaluate("e => getComputedStyle(e).textDecorationLine") == "line-through"
    expect(items.nth(0)).to_have_class("box-item finding overridden rejected")  # the 0.91 box, not another one
    expect(page.locator("#images svg g.box.overridden.rejected")).to_have_count(1)
    expect(row_a.locator(".findings")).to_contain_text("1 overridden")
    gateway.ingest("FindingOverride", override(BOXES[1], study=STUDY_A, verdict="CONFIRMED", by="dr-house",
                                               created_at=at + 1000))
    expect(page.locator("#images .box-item.overridden.confirmed .override")).to_contain_text("confirmed by dr-house")
    expect(page.locator("#images .box-item.overridden")).to_have_count(2)
    expect(row_a.locator(".findings")).to_contain_text("2 overridden")
    page.screenshot(path=str(tmp_path / "study-overridden.png"), full_page=True)

    # a not-analysable study shows its status and QC flag, and no boxes (the study view takes the
    # whole width, so the worklist is one step back)
    page.click("#close-study")
    page.locator(f'tr.study-row[data-study-uid="{STUDY_B}"]').click()
    expect(page.locator("#images .not-analysable")).to_have_text("NOT ANALYSABLE")
    expect(page.locator("#images .qc-flag")).to_contain_text("outside the models' applicability")
    expect(page.locator("#images svg g.box")).to_have_count(0)
    page.screenshot(path=str(tmp_path / "study-not-analysable.png"), full_page=True)


def test_a_wrong_token_is_reported_and_nothing_streams(gateway: RunningGateway, page: Page) -> None:
    _login(page, gateway.url, "wrong")
    expect(page.locator("#error")).to_contain_text("401")
    expect(page.locator("#worklist tbody tr")).to_have_count(0)
