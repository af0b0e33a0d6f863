"""/monitoring in Chromium: the page's inline CSS and data: plots render under its own CSP, with no
console error (a CSP violation is one), scoped by the token. The gateway runs in-process with an
injected hub (no Kafka: the records are what the source would deliver); the browser is real."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web

from radstream.domain.exposure import exposure_statistics
from radstream.services.gateway import Authenticator, EventHub, Gateway, StreamSettings, create_app
from radstream.services.gateway.events import Position
from radstream.services.synthetic.phantoms import make_phantom
from radstream.streams.kafka.topics import FINDINGS_OVERRIDES, STUDY_RESULTS
from radstream.streams.monitoring import MonitorSettings
from tests.browser import BROWSER_SKIPS, launch_chromium, sync_playwright

pytestmark = BROWSER_SKIPS
TOKENS = {"tok-all": None, "tok-b": frozenset({"SITE_B"})}
NOW = int(dt.datetime(2026, 12, 2, tzinfo=dt.timezone.utc).timestamp() * 1000)
BOX = [10.0, 10.0, 30.0, 30.0]


def _result(n: int, site: str, scale: float, rng: np.random.Generator) -> dict:
    finding = {"rule_id": "nodule-detected", "rule_version": "1", "label": "nodule", "confidence": 0.8, "box": BOX,
               "inputs": {"fused_box[0].score": 0.8}, "thresholds": {}, "finding_id": f"f{site}{n}"}
    image = {"sop_uid": f"{site}{n}.1", "series_uid": f"{site}{n}.s", "frame": 0, "status": "ANALYSED",
             "qc_flags": [], "missing_models": [], "classifier_outputs": [], "findings": [finding],
             "fused_boxes": [{"label": "nodule", "score": 0.8, "box": BOX,
                              "sources": [{"model": "demo-frcnn", "box": BOX, "score": 0.8}]}],
             "manufacturer": "Acme" if site == "SITE_A" else "Otherco", "manufacturer_model": "X1",
             "image_stats": exposure_statistics(make_phantom(rng, 96).image * scale),
             "modality": "CR", "body_part": "CHEST", "view_position": "PA", "display_uri": None, "stage_ms": {},
             "latency_ms": 1.0}
    return {"idempotency_key": f"{site}{n}", "study_uid": f"{site}{n}", "site": site, "final": True,
            "completion": "expected_count_reached", "expected_instances": 1, "images": [image],
            "model_versions": {}, "created_at": NOW + n, "config_version": 0, "stage_ms": {}, "trace_id": None}


@pytest.fixture(scope="module")
def gateway_url() -> Iterator[str]:
    gateway = Gateway(EventHub(), Authenticator(TOKENS), None, None, StreamSettings(),
                      monitor=MonitorSettings(window_studies=15))
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict = {}

    async def start() -> None:
        runner = web.AppRunner(create_app(gateway))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        holder.update(runner=runner, port=site._server.sockets[0].getsockname()[1])
        rng = np.random.default_rng(5)
        for n in range(30):  # site A's scale halves after 15 studies; site B's stays
            for site_name, scale in (("SITE_A", 0.5 if n >= 15 else 1.0), ("SITE_B", 1.0)):
                result = _result(n, site_name, scale, rng)
                gateway.hub.ingest(STUDY_RESULTS, result, Position(STUDY_RESULTS, 0, n))
                verdict = "CONFIRMED" if n % 3 else "REJECTED"
                gateway.hub.ingest(FINDINGS_OVERRIDES, {"finding_id": f"f{site_name}{n}", "study_uid": result["study_uid"],
                                                        "verdict": verdict, "by": "dr-a", "created_at": NOW + n,
                                                        "reason": "" if verdict == "CONFIRMED" else "artefact"},
                                   Position(FINDINGS_OVERRIDES, 0, n))
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    assert started.wait(60)
    try:
        yield f"http://127.0.0.1:{holder['port']}"
    finally:
        asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def _open(url: str, token: str, shot: Path | None = None) -> tuple[dict, list[str]]:
    errors: list[str] = []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900},
                                    extra_http_headers={"Authorization": f"Bearer {token}"})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{url}/monitoring")
            page.wait_for_load_state("load")
            seen = page.evaluate("""() => ({
                images: [...document.images].map(i => i.complete && i.naturalWidth > 0),
                styled: getComputedStyle(document.querySelector('th')).backgroundColor,
                text: document.body.innerText})""")
            if shot is not None:  # the top, then the drift section
                page.screenshot(path=str(shot), full_page=False)
                page.evaluate("document.querySelector('h3:nth-of-type(5)').scrollIntoView()")
                page.screenshot(path=str(shot.with_name(shot.stem + "-drift.png")), full_page=False)
        finally:
            browser.close()
    return seen, errors


def test_the_monitoring_page_renders_its_plots_under_its_policy(gateway_url: str, tmp_path: Path) -> None:
    folder = os.environ.get("RADSTREAM_SCREENSHOTS")  # docs/images, when refreshing the screenshot
    seen, errors = _open(gateway_url, "tok-all", Path(folder) / "monitoring.png" if folder else None)
    assert not errors, errors
    assert len(seen["images"]) >= 5 and all(seen["images"]), seen["images"]  # PPV, PSI and histogram plots
    assert seen["styled"] == "rgb(238, 243, 247)"  # the inline stylesheet applied
    assert "site:SITE_A: pixel_mean drifts" in seen["text"] and "site:SITE_B" in seen["text"]


def test_a_site_token_sees_only_its_site(gateway_url: str) -> None:
    seen, errors = _open(gateway_url, "tok-b")
    assert not errors, errors
    assert "SITE_A" not in seen["text"] and "site:SITE_B" in seen["text"] and "Acme" not in seen["text"]
