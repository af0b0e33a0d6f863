"""A radiologist's review in headless Chromium, on the real RG1 chest through the real pipeline.

One stack for the module (every stage as its own process on the embedded broker), the RG1 study
(Philips CR, both encodings) published once, and a real `radstream gateway` process with a token
file and the dev delegate key `radstream up` makes. The browser then reads findings first, opens
the candidates, zooms, pans and windows the image from the full-range pixels, shows each model's
own box on hover, and confirms and rejects findings by keyboard: `radstream results --json` shows
each verdict under the token's identity, and a second viewer sees it live. No console errors.

RADSTREAM_VIEWER_SCREENSHOTS=DIR also writes the screenshots docs/gateway.md shows into DIR.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from radstream.services.broker import free_port
from radstream.services.demo import real_radiographs
from radstream.services.publish import publish
from radstream.services.stack import Stack
from radstream.streams.blobstore import open_blob_store
from radstream.streams.config import Config
from radstream.streams.kafka.producer import EventPublisher
from tests.conftest import FAST_GROUP_ENV
from tests.browser import BROWSER_SKIPS, Browser, Page, expect, sync_playwright, launch_chromium

pytestmark = [pytest.mark.integration, *BROWSER_SKIPS]
SITE = "SITE_A"
TOKENS = {"tok-rad": "dr-rad", "tok-desk": "north-desk"}
# two detectors, so a fused box has two models' own boxes to show; and the pixel-QC model
MODELS = "demo-effdet,demo-frcnn,demo-qc"


@dataclass
class Review:
    url: str
    study: str
    env: dict[str, str]
    state: dict


def _get(url: str, token: str) -> dict:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def review(broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Review]:
    root = tmp_path_factory.mktemp("review")
    env = {**FAST_GROUP_ENV, "RADSTREAM_MODELS": MODELS, "RADSTREAM_BOOTSTRAP": broker.bootstrap,
           "RADSTREAM_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:8]}.", "RADSTREAM_HOME": str(root / "home")}
    config = Config.from_env(env={**os.environ, **env})
    stack = Stack(config, config.kafka.bootstrap, env=env).start()  # also the dev keys, gateway's included
    tokens = root / "tokens"
    tokens.write_text("".join(f"{t} {SITE} {name}\n" for t, name in TOKENS.items()))
    port = free_port()
    log = root / "gateway.log"
    with log.open("wb") as out:
        gateway = subprocess.Popen([sys.executable, "-m", "radstream.services.cli", "gateway", "--port", str(port),
                                    "--tokens", str(tokens), "--heartbeat", "2"], env={**os.environ, **env},
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        (study,), errors = publish(EventPublisher(config.kafka), open_blob_store(config.blob_url),
                                   real_radiographs()[:2], SITE, lambda m: None)
        assert not errors
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while True:
            assert gateway.poll() is None, log.read_text()
            try:
                state = _get(f"{url}/studies/{study}", "tok-rad")
                if state["status"] == "final":
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"no final result for RG1; see {stack.logs}"
            stack.poll()
            time.sleep(0.5)
        assert "overrides signed by gateway" in log.read_text()
        yield Review(url, study, env, state)
    finally:
        gateway.terminate()
        gateway.wait(20)
        stack.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = launch_chromium(p)
        try:
            yield b
        finally:
            b.close()


class Viewer:
    """One browser tab on the study, and every console error or page error it logged."""

    def __init__(self, browser: Browser, review: Review, token: str) -> None:
        self.page: Page = browser.new_page(viewport={"width": 1500, "height": 1000})
        self.page.set_default_timeout(20000)
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("response", lambda r: self.errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        # the token never rides in a URL: EventSource and images carry a ticket (D-039)
        self.page.on("request", lambda r: self.errors.append(f"token in {r.url}") if token in r.url else None)
        self.page.goto(f"{review.url}/#study={review.study}")
        self.page.fill("#token", token)
        self.page.click("#login button[type=submit]")
        expect(self.page.locator("#identity")).to_have_text(f"signed in as {TOKENS[token]}")
        expect(self.page.locator("#study-status")).to_contain_text("final")
        self.page.wait_for_function("() => [...document.querySelectorAll('#images img.picture')]"
                                    ".every(i => i.complete && i.naturalWidth > 0)")

    def close(self) -> None:
        self.page.close()
        assert self.errors == [], self.errors


def _shoot(page: Page, name: str) -> None:
    """A screenshot for docs/gateway.md, when asked for: 1100 px wide, 256 colours (a quarter of the bytes)."""
    folder = os.environ.get("RADSTREAM_VIEWER_SCREENSHOTS")
    if folder:
        from PIL import Image  # matplotlib's dependency

        path = Path(folder) / name
        page.screenshot(path=str(path))
        shot = Image.open(path).convert("RGB")
        shot = shot.resize((1100, round(shot.height * 1100 / shot.width)), Image.LANCZOS)
        shot.quantize(256).save(path, optimize=True)


def _findings(state: dict) -> list[tuple[dict, dict]]:
    """(image, finding) in the viewer's order (n / p): per image, its fused boxes' findings, then
    the other findings (no box, or a box no fused box matches)."""
    out = []
    for img in state["images"]:
        findings = img["findings"] or []
        matched = []
        for box in img["fused_boxes"] or []:
            found = next((f for f in findings if f["box"] == box["box"] and f["label"] == box["label"]), None)
            if found is not None:
                matched.append(found)
        out += [(img, f) for f in matched] + [(img, f) for f in findings if f not in matched]
    return out


def _uncovered(img: dict, finding: dict) -> bool:
    """Whether the centre of the finding's box lies in no other finding's box (so a hover reaches it)."""
    x1, y1, x2, y2 = finding["box"]
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return not any(f is not finding and f["box"] and f["box"][0] <= cx <= f["box"][2] and f["box"][1] <= cy <= f["box"][3]
                   for f in img["findings"] or [])


def _results(review: Review) -> dict:
    run = subprocess.run([sys.executable, "-m", "radstream.services.cli", "results", "--json", "--study",
                          review.study], env={**os.environ, **review.env}, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    (line,) = [line for line in run.stdout.splitlines() if line.strip()]
    return {f["finding_id"]: f for img in json.loads(line)["images"] for f in img["findings"]}


def test_findings_first_and_the_toggle_reveals_the_candidates(review: Review, browser: Browser) -> None:
    boxed = [f for _, f in _findings(review.state) if f["box"]]
    candidates = sum(len(img["fused_boxes"]) for img in review.state["images"]) - len(boxed)
    assert boxed and candidates > 0, "RG1 gives findings and sub-threshold candidates (phantom-trained models)"
    viewer = Viewer(browser, review, "tok-rad")
    page = viewer.page
    boxes = page.locator("#images svg g.box")
    expect(boxes).to_have_count(len(boxed))
    expect(page.locator("#images svg g.box.candidate")).to_have_count(0)
    expect(page.locator("#images .candidates-list")).to_have_count(0)
    expect(page.locator("#candidate-count")).to_have_text(f"({candidates})")
    # the image uses the width: the viewport takes most of the page, not a thumbnail
    viewport = page.locator("#images .viewport").first.bounding_box()
    assert viewport["width"] > 900 and viewport["height"] > 600
    _shoot(page, "viewer-findings.png")
    page.check("#show-candidates")
    expect(boxes).to_have_count(len(boxed) + candidates)
    expect(page.locator("#images svg g.box.candidate")).to_have_count(candidates)
    expect(page.locator("#images .candidates-list li")).to_have_count(candidates)
    _shoot(page, "viewer-candidates.png")
    page.uncheck("#show-candidates")
    expect(boxes).to_have_count(len(boxed))
    viewer.close()


def test_zoom_pan_window_level_and_each_models_boxes(review: Review, browser: Browser) -> None:
    img, finding = next((i, f) for i, f in _findings(review.state) if f["box"] and _uncovered(i, f))
    fused = next(b for b in img["fused_boxes"] if b["box"] == finding["box"])
    viewer = Viewer(browser, review, "tok-rad")
    page = viewer.page
    card = page.locator(f'#images article.image[data-sop-uid="{img["sop_uid"]}"]')
    picture, viewport = card.locator("img.picture"), card.locator(".viewport")
    before = picture.bounding_box()
    viewport.focus()
    page.keyboard.press("+")
    page.keyboard.press("+")
    expect(viewport).to_have_attribute("data-zoom", "2.25")
    zoomed = picture.bounding_box()
    assert zoomed["width"] == pytest.approx(before["width"] * 2.25, rel=0.01)
    # drag to pan: the picture moves with the pointer
    box = viewport.bounding_box()
    page.mouse.move(box["x"] + 400, box["y"] + 300)
    page.mouse.down()
    page.mouse.move(box["x"] + 300, box["y"] + 200, steps=4)
    page.mouse.up()
    panned = picture.bounding_box()
    assert panned["x"] == pytest.approx(zoomed["x"] - 100, abs=2) and panned["y"] == pytest.approx(zoomed["y"] - 100, abs=2)
    # each model's own box on hover, in image coordinates like the fused box
    target = card.locator(f'svg g.box[data-finding-id="{finding["finding_id"]}"] rect')
    target.scroll_into_view_if_needed()
    page.keyboard.press("0")  # fit, so the box is surely in view
    expect(viewport).to_have_attribute("data-zoom", "1.00")
    target.hover()
    sources = card.locator("svg g.source-box")
    expect(sources).to_have_count(len(fused["sources"]))
    assert sorted(sources.evaluate_all("gs => gs.map(g => g.dataset.model)")) == sorted(s["model"] for s in fused["sources"])
    # the wheel zooms about the pointer: the hovered box stays under it, its models' boxes shown
    page.mouse.wheel(0, -400)
    page.mouse.wheel(0, -400)
    assert float(viewport.get_attribute("data-zoom")) > 3
    expect(sources).to_have_count(len(fused["sources"]))
    _shoot(page, "viewer-hover.png")
    page.keyboard.press("0")
    page.mouse.move(box["x"] + 5, box["y"] + 5)
    expect(sources).to_have_count(0)
    # window/level from the full-range pixels: the gateway windows them; the picture changes
    expect(card).to_have_attribute("data-windowable", "1")
    shown = picture.evaluate("i => { const c = document.createElement('canvas'); c.width = 64; c.height = 64; "
                             "const x = c.getContext('2d'); x.drawImage(i, 0, 0, 64, 64); "
                             "return Array.from(x.getImageData(0, 0, 64, 64).data.filter((_, k) => k % 4 === 0)); }")
    with page.expect_response(lambda r: "center=" in r.url and r.status == 200) as answer:
        card.locator("select.wl-preset").select_option("full")
    assert answer.value.headers["content-type"] == "image/png"
    expect(picture).not_to_have_attribute("data-window", "display")
    page.wait_for_function("(i) => i.complete && i.currentSrc.includes('center=')", arg=picture.element_handle())
    windowed = picture.evaluate("i => { const c = document.createElement('canvas'); c.width = 64; c.height = 64; "
                                "const x = c.getContext('2d'); x.drawImage(i, 0, 0, 64, 64); "
                                "return Array.from(x.getImageData(0, 0, 64, 64).data.filter((_, k) => k % 4 === 0)); }")
    assert sum(abs(a - b) for a, b in zip(shown, windowed)) / len(shown) > 5  # a visibly different rendering
    level = card.locator("input.wl-level")
    level.focus()
    with page.expect_response(lambda r: "center=" in r.url and r.status == 200):
        for _ in range(40):
            page.keyboard.press("ArrowRight")
    expect(card.locator("select.wl-preset")).to_have_value("custom")
    viewport.focus()
    page.keyboard.press("+")
    _shoot(page, "viewer-window.png")
    viewer.close()


def test_confirm_and_reject_by_keyboard_reach_results_and_every_viewer(review: Review, browser: Browser) -> None:
    ordered = [f for _, f in _findings(review.state)]
    assert len(ordered) >= 2, "RG1 gives at least two findings"
    first, second = ordered[0], ordered[1]
    radiologist, desk = Viewer(browser, review, "tok-rad"), Viewer(browser, review, "tok-desk")
    page = radiologist.page
    page.locator("body").focus()
    page.keyboard.press("n")
    item = page.locator(f'#images li.box-item[data-finding-id="{first["finding_id"]}"]')
    expect(item).to_have_class("box-item finding selected")
    expect(item).to_be_focused()
    page.keyboard.press("c")
    expect(page.locator("#review-status")).to_contain_text("1 confirmed as dr-rad")
    # the other viewer sees it live, over SSE; the bus has it signed by the gateway for dr-rad
    expect(desk.page.locator(f'#images li.box-item[data-finding-id="{first["finding_id"]}"] .override')
           ).to_contain_text("confirmed by dr-rad")

    page.keyboard.press("n")
    page.keyboard.press("r")
    form = page.locator(f'#images li.box-item[data-finding-id="{second["finding_id"]}"] form.reject-form')
    expect(form).to_be_visible()
    expect(form.locator("input[type=radio]").first).to_be_focused()
    form.locator("input[value='normal anatomy']").check()
    form.locator("input.note").fill("rib crossing")
    _shoot(page, "viewer-reject.png")
    form.locator("input.note").press("Enter")
    rejected = desk.page.locator(f'#images li.box-item.overridden.rejected[data-finding-id="{second["finding_id"]}"]')
    expect(rejected.locator(".override")).to_contain_text("rejected by dr-rad at ")
    expect(rejected.locator(".override")).to_contain_text(": normal anatomy: rib crossing")
    expect(page.locator(f'#images li.box-item.overridden.rejected[data-finding-id="{second["finding_id"]}"]')
           ).to_be_visible()
    expect(page.locator(f'#images svg g.box.overridden.rejected[data-finding-id="{second["finding_id"]}"]')
           ).to_have_count(1 if second["box"] else 0)
    results = _results(review)  # what a reporting system reads: both verdicts, under the token's identity
    shown = results[first["finding_id"]]["override"]
    assert (shown["verdict"], shown["by"], shown["via"]) == ("confirmed", "dr-rad", "gateway")
    assert results[second["finding_id"]]["override"] == {
        "verdict": "rejected", "by": "dr-rad", "reason": "normal anatomy: rib crossing", "via": "gateway",
        "at": results[second["finding_id"]]["override"]["at"]}
    assert {fid for fid, f in results.items() if "override" in f} == {first["finding_id"], second["finding_id"]}
    _shoot(desk.page, "viewer-overrides.png")
    radiologist.close()
    desk.close()


# WCAG 2.1 relative luminance and contrast ratio, computed in the page from the computed colours
CONTRAST = """(sel) => [...document.querySelectorAll(sel)].filter(e => e.offsetParent).map(e => {
  const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
                                       .reduce((a, v, i) => a + v * [0.2126, 0.7152, 0.0722][i], 0);
  let bg = e, colour = 'rgba(0, 0, 0, 0)';
  while (bg && (colour = getComputedStyle(bg).backgroundColor).endsWith(', 0)')) bg = bg.parentElement;
  const [a, b] = [lum(rgb(getComputedStyle(e).color)), lum(rgb(colour))];
  return [sel, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)];
})"""


def test_controls_are_labelled_in_a_sensible_order_with_enough_contrast(review: Review, browser: Browser) -> None:
    viewer = Viewer(browser, review, "tok-rad")
    page = viewer.page
    page.check("#show-candidates")
    unnamed = page.evaluate("""() => [...document.querySelectorAll('button, input, select')].filter(e => e.offsetParent)
        .filter(e => !(e.getAttribute('aria-label') || (e.labels && e.labels.length) || e.textContent.trim()))
        .map(e => e.outerHTML.slice(0, 80))""")
    assert unnamed == []
    # Tab order within an image card: its view controls, then the image, then its findings' buttons
    card = page.locator("#images article.image").first
    card.locator("button.zoom-out").focus() if card.locator("button.zoom-out").is_enabled() else card.locator(
        "button.zoom-in").focus()
    order = []
    for _ in range(12):
        page.keyboard.press("Tab")
        order.append(page.evaluate("() => { const e = document.activeElement; "
                                   "return e.className || e.tagName.toLowerCase(); }"))
    assert order.index("viewport") < order.index("confirm"), order
    assert order.index("zoom-fit") < order.index("viewport") and order.index("wl-preset") < order.index("viewport")
    ratios = []
    for sel in ("body", ".muted", "#images .box-item strong", "#images .rule", "#images .confidence",
                "#images button.confirm", "#images .candidates-list .muted", "#keys-help", ".warning"):
        ratios += page.evaluate(CONTRAST, sel)
    assert ratios and all(r >= 4.5 for _, r in ratios), [x for x in ratios if x[1] < 4.5]
    viewer.close()
