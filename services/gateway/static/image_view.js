// One image of a study: the picture, zoom and pan, window/level, and the SVG overlay of boxes.
// The overlay lives in image coordinates inside the same transformed stage as the picture, so boxes
// follow every zoom and pan exactly. Styles are set through CSSOM only (the CSP allows no inline style).
import { el, svg } from "./dom.js";

const MODEL_COLOURS = ["#4fb3ff", "#ff6ad5", "#7cf29a", "#c7a4ff", "#ffd36a", "#6af2f2"];
const MAX_ZOOM = 16;
const LABEL_PX = 13;  // box labels stay this many screen pixels tall at every zoom

export class ImageView {
  // urlFor(path): an authenticated URL for <img>; fetchJson(path): an authenticated GET.
  constructor(image, { urlFor, fetchJson, onBoxHover, index }) {
    this.image = image;
    this.urlFor = urlFor;
    this.fetchJson = fetchJson;
    this.onBoxHover = onBoxHover || (() => {});
    this.iw = image.columns || 0;
    this.ih = image.rows || 0;
    this.zoom = 1;
    this.cx = this.iw / 2;
    this.cy = this.ih / 2;
    this.range = null;
    this.window = null;  // null: decode's display PNG; else {center, width}
    this.models = new Map();  // model name -> colour, stable per image
    this.marks = [];
    this.pinned = null;  // the mark whose model boxes stay shown (the selected finding)
    this.build(index);
  }

  build(index) {
    const label = `image ${index + 1}`;
    this.picture = el("img", { class: "picture", alt: `${label}: display image of ${this.image.sop_uid}` });
    this.picture.draggable = false;
    this.overlay = svg("svg", { class: "overlay", "aria-hidden": "true" });
    this.boxLayer = svg("g", { class: "boxes" });
    this.sourceLayer = svg("g", { class: "sources-layer" });
    this.overlay.append(this.boxLayer, this.sourceLayer);
    this.stage = el("div", { class: "stage" }, this.picture, this.overlay);
    this.viewport = el("div", { class: "viewport", tabindex: "0", role: "img",
                                "aria-label": `${label}; drag to pan, + and - to zoom, 0 to fit` }, this.stage);
    this.zoomOut = el("button", { type: "button", class: "zoom-out", "aria-label": `Zoom out ${label}`, text: "−" });
    this.zoomIn = el("button", { type: "button", class: "zoom-in", "aria-label": `Zoom in ${label}`, text: "+" });
    this.zoomFit = el("button", { type: "button", class: "zoom-fit", "aria-label": `Fit ${label}`, text: "Fit" });
    this.zoomReadout = el("output", { class: "zoom-level", "aria-live": "off", text: "fit" });
    this.preset = el("select", { class: "wl-preset", "aria-label": `Window of ${label}` },
      el("option", { value: "display", text: "DICOM window (as decoded)" }),
      el("option", { value: "auto", text: "Auto (1–99 %)" }),
      el("option", { value: "full", text: "Full range" }),
      el("option", { value: "custom", text: "Custom" }));
    this.level = el("input", { type: "range", class: "wl-level", "aria-label": `Window level of ${label}` });
    this.width = el("input", { type: "range", class: "wl-width", "aria-label": `Window width of ${label}` });
    this.levelOut = el("output", { class: "wl-level-value" });
    this.widthOut = el("output", { class: "wl-width-value" });
    const wl = el("span", { class: "wl" }, this.preset,
      el("span", { class: "wl-pair" }, el("span", { class: "muted", text: "L" }), this.level, this.levelOut),
      el("span", { class: "wl-pair" }, el("span", { class: "muted", text: "W" }), this.width, this.widthOut));
    this.toolbar = el("div", { class: "toolbar", role: "toolbar", "aria-label": `${label} view` },
      this.zoomOut, this.zoomReadout, this.zoomIn, this.zoomFit, wl);
    this.details = el("div", { class: "details" });
    this.root = el("article", { class: "image", "aria-label": label },
      el("div", { class: "view" }, this.toolbar, this.viewport), this.details);
    this.root.dataset.sopUid = this.image.sop_uid;
    this.setWindowControls(false);
    this.wire();
  }

  wire() {
    this.zoomIn.addEventListener("click", () => this.zoomBy(1.5));
    this.zoomOut.addEventListener("click", () => this.zoomBy(1 / 1.5));
    this.zoomFit.addEventListener("click", () => this.fit());
    this.picture.addEventListener("load", () => {
      if (!this.iw || !this.ih) {
        this.iw = this.picture.naturalWidth;
        this.ih = this.picture.naturalHeight;
        this.cx = this.iw / 2;
        this.cy = this.ih / 2;
        this.setGeometry();
      }
      this.root.dataset.loaded = this.picture.currentSrc ? "1" : "";
    });
    this.viewport.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const r = this.viewport.getBoundingClientRect();
      this.zoomBy(Math.exp(-ev.deltaY * 0.002), ev.clientX - r.left, ev.clientY - r.top);
    }, { passive: false });
    let drag = null;
    this.viewport.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0) return;
      drag = { x: ev.clientX, y: ev.clientY, cx: this.cx, cy: this.cy };
      this.viewport.setPointerCapture(ev.pointerId);
      this.viewport.classList.add("dragging");
    });
    this.viewport.addEventListener("pointermove", (ev) => {
      if (!drag) return;
      const s = this.scale();
      this.cx = drag.cx - (ev.clientX - drag.x) / s;
      this.cy = drag.cy - (ev.clientY - drag.y) / s;
      this.layout();
    });
    const stop = () => { drag = null; this.viewport.classList.remove("dragging"); };
    this.viewport.addEventListener("pointerup", stop);
    this.viewport.addEventListener("pointercancel", stop);
    new ResizeObserver(() => this.layout()).observe(this.viewport);
    this.preset.addEventListener("change", () => this.applyPreset(this.preset.value));
    let pending = null;
    const slid = () => {
      this.preset.value = "custom";
      this.showWindowValues(Number(this.level.value), Number(this.width.value));
      clearTimeout(pending);  // one image request per pause in the drag, not per step
      pending = setTimeout(() => this.setWindow({ center: Number(this.level.value), width: Number(this.width.value) }), 120);
    };
    this.level.addEventListener("input", slid);
    this.width.addEventListener("input", slid);
  }

  // -- the picture and window/level ------------------------------------------------
  update(image) {
    this.image = image;
    if (image.columns && image.rows && (image.columns !== this.iw || image.rows !== this.ih)) {
      [this.iw, this.ih] = [image.columns, image.rows];
      this.cx = this.iw / 2;
      this.cy = this.ih / 2;
    }
    this.setGeometry();
    this.showPicture();
    if (image.has_pixels && !this.range && !this.rangeAsked) this.loadRange();
  }

  setGeometry() {
    for (const node of [this.picture, this.overlay]) {
      if (this.iw) { node.setAttribute("width", this.iw); node.setAttribute("height", this.ih); }
    }
    if (this.iw) this.overlay.setAttribute("viewBox", `0 0 ${this.iw} ${this.ih}`);
    this.layout();
  }

  showPicture() {
    const base = this.image.image_url;
    if (!base) {
      this.viewport.dataset.empty = "no display image yet";
      return;
    }
    delete this.viewport.dataset.empty;
    let path = base;
    if (this.window) {
      path += (base.includes("?") ? "&" : "?") +
              `center=${this.window.center.toFixed(2)}&width=${this.window.width.toFixed(2)}`;
    }
    // the same picture under a renewed ticket is not fetched again
    if (this.shownPath !== path) {
      this.shownPath = path;
      this.picture.setAttribute("src", this.urlFor(path));
    }
    this.picture.dataset.window = this.window ? `${this.window.center.toFixed(2)},${this.window.width.toFixed(2)}` : "display";
  }

  async loadRange() {
    this.rangeAsked = true;
    const { sop_uid: sop, frame } = this.image;
    const base = this.image.image_url.replace(/\.png(\?.*)?$/, "");
    try {
      this.range = await this.fetchJson(`${base}/pixel-range${frame ? "?frame=" + frame : ""}`);
    } catch (err) {
      this.rangeAsked = false;  // try again on the next update
      return;
    }
    const { min, max } = this.range;
    const span = Math.max(max - min, 1);
    for (const [input, lo, hi] of [[this.level, min, max], [this.width, span / 1000, span]]) {
      input.min = String(lo);
      input.max = String(hi);
      input.step = String(span / 1000);
    }
    const auto = this.presetWindow("auto");
    this.level.value = String(auto.center);
    this.width.value = String(auto.width);
    this.setWindowControls(true);
    this.root.dataset.windowable = sop ? "1" : "";
  }

  presetWindow(name) {
    const { min, max, p1, p99 } = this.range;
    if (name === "full") return { center: (min + max) / 2, width: Math.max(max - min, 1e-3) };
    return { center: (p1 + p99) / 2, width: Math.max(p99 - p1, 1e-3) };
  }

  applyPreset(name) {
    if (name === "display" || !this.range) { this.setWindow(null); this.showWindowValues(null); return; }
    if (name === "custom") return;
    const w = this.presetWindow(name);
    this.level.value = String(w.center);
    this.width.value = String(w.width);
    this.showWindowValues(w.center, w.width);
    this.setWindow(w);
  }

  setWindow(window) {
    this.window = window;
    this.showPicture();
  }

  setWindowControls(enabled) {
    for (const c of [this.preset, this.level, this.width]) c.disabled = !enabled;
    this.preset.title = enabled ? "" : "no full-range pixels for this image";
  }

  showWindowValues(center, width) {  // null: decode's own window, whose values the gateway does not know
    this.levelOut.textContent = center === null ? "" : center.toFixed(0);
    this.widthOut.textContent = center === null ? "" : width.toFixed(0);
  }

  // -- zoom and pan ------------------------------------------------------------------
  fitScale() {
    const vw = this.viewport.clientWidth, vh = this.viewport.clientHeight;
    if (!this.iw || !this.ih || !vw || !vh) return 1;
    return Math.min(vw / this.iw, vh / this.ih);
  }

  scale() { return this.fitScale() * this.zoom; }

  zoomBy(factor, px, py) {
    const vw = this.viewport.clientWidth, vh = this.viewport.clientHeight;
    const s = this.scale();
    const fx = px === undefined ? vw / 2 : px, fy = py === undefined ? vh / 2 : py;
    // the image point under (fx, fy) stays there
    const ix = this.cx + (fx - vw / 2) / s, iy = this.cy + (fy - vh / 2) / s;
    this.zoom = Math.min(MAX_ZOOM, Math.max(1, this.zoom * factor));
    const s2 = this.scale();
    this.cx = ix - (fx - vw / 2) / s2;
    this.cy = iy - (fy - vh / 2) / s2;
    this.layout();
  }

  fit() {
    this.zoom = 1;
    this.cx = this.iw / 2;
    this.cy = this.ih / 2;
    this.layout();
  }

  centerOn(box) {
    if (this.zoom <= 1) return;
    const [x1, y1, x2, y2] = box;
    this.cx = (x1 + x2) / 2;
    this.cy = (y1 + y2) / 2;
    this.layout();
  }

  layout() {
    const vw = this.viewport.clientWidth, vh = this.viewport.clientHeight;
    const s = this.scale();
    if (this.zoom <= 1) { this.cx = this.iw / 2; this.cy = this.ih / 2; }
    // keep the image's centre point inside the image: never pan it out of view
    this.cx = Math.min(this.iw, Math.max(0, this.cx));
    this.cy = Math.min(this.ih, Math.max(0, this.cy));
    const tx = vw / 2 - this.cx * s, ty = vh / 2 - this.cy * s;
    this.stage.style.transform = `translate(${tx}px, ${ty}px) scale(${s})`;
    this.viewport.dataset.zoom = this.zoom.toFixed(2);
    this.zoomReadout.textContent = this.zoom <= 1 ? "fit" : `${this.zoom.toFixed(1)}×`;
    this.zoomOut.disabled = this.zoom <= 1;
    this.zoomIn.disabled = this.zoom >= MAX_ZOOM;
    const font = String(LABEL_PX / (s || 1));
    for (const t of this.overlay.querySelectorAll("text")) t.setAttribute("font-size", font);
  }

  // -- the overlay -------------------------------------------------------------------
  // marks: [{n, box, label, score, finding (or null), sources, candidate}]
  drawMarks(marks, { showCandidates, selectedId }) {
    this.marks = marks;
    this.boxLayer.replaceChildren();
    for (const mark of marks) {
      if (mark.candidate && !showCandidates) continue;
      const [x1, y1, x2, y2] = mark.box;
      const g = svg("g", { class: "box" + (mark.candidate ? " no-finding candidate" : " finding") +
                                    (mark.verdict ? ` overridden ${mark.verdict}` : "") +
                                    (mark.finding && mark.finding.finding_id === selectedId ? " selected" : "") });
      g.dataset.label = mark.label;
      if (mark.finding) {
        g.dataset.rule = mark.finding.rule_id;
        g.dataset.findingId = mark.finding.finding_id;
      }
      const rect = svg("rect", { x: x1, y: y1, width: x2 - x1, height: y2 - y1 });
      const title = svg("title");
      title.textContent = `${mark.tag} ${mark.label} ${mark.score.toFixed(2)}` + (mark.candidate ? " (below threshold)" : "");
      g.append(rect, title);
      if (!mark.candidate) {
        const text = svg("text", { x: x1, y: Math.max(0, y1 - 3) });
        text.textContent = `${mark.tag} ${mark.label} ${mark.score.toFixed(2)}`;
        g.append(text);
      }
      g.addEventListener("pointerenter", () => { this.showSources(mark); this.onBoxHover(mark, true); });
      g.addEventListener("pointerleave", () => { this.showSources(this.pinned); this.onBoxHover(mark, false); });
      this.boxLayer.append(g);
    }
    this.pinned = marks.find((m) => m.finding && m.finding.finding_id === selectedId) || null;
    this.showSources(this.pinned);
    this.layout();
  }

  colour(model) {
    if (!this.models.has(model)) this.models.set(model, MODEL_COLOURS[this.models.size % MODEL_COLOURS.length]);
    return this.models.get(model);
  }

  // Each model's own box behind one fused box (its provenance), in that model's colour.
  showSources(mark) {
    this.sourceLayer.replaceChildren();
    if (!mark) return;
    (mark.sources || []).filter((s) => s.box).forEach((source, i) => {
      const [x1, y1, x2, y2] = source.box;
      const g = svg("g", { class: "source-box" });
      g.dataset.model = source.model;
      const rect = svg("rect", { x: x1, y: y1, width: x2 - x1, height: y2 - y1 });
      // labels stacked under the fused box, one line per model, so overlapping boxes stay readable
      const text = svg("text", { x: mark.box[0], y: mark.box[3], dy: `${1.1 * (i + 1)}em` });
      text.textContent = `${source.model} ${source.score.toFixed(2)}`;
      rect.style.stroke = this.colour(source.model);
      text.style.fill = this.colour(source.model);
      g.append(rect, text);
      this.sourceLayer.append(g);
    });
    this.layout();
  }
}
