// radstream viewer: a live worklist over GET /events and a study view over GET /studies/{uid}/events.
// Plain DOM, no build step. Data is only ever written with textContent (never parsed as HTML).
"use strict";

const TOKEN_KEY = "radstream.token";
const SVG_NS = "http://www.w3.org/2000/svg";
const $ = (sel) => document.querySelector(sel);
const EVENT_TYPES = ["image.decoded", "inference.results", "findings.fused", "study.results", "findings.overrides"];

const state = { token: sessionStorage.getItem(TOKEN_KEY) || "", ticket: "", list: null, study: null, studyUid: null,
                rows: new Map(), refresh: null };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function withToken(url) {
  // EventSource and <img> cannot send an Authorization header: they carry a short-lived ticket
  // (POST /session/ticket), never the token itself, which stays in the header of fetch() calls.
  return url + (url.includes("?") ? "&" : "?") + "ticket=" + encodeURIComponent(state.ticket);
}

async function refreshTicket() {
  const resp = await fetch("/session/ticket", { method: "POST", headers: { Authorization: "Bearer " + state.token } });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(`${resp.status}: ${body.error || resp.statusText}`);
  state.ticket = body.ticket;
  clearTimeout(state.ticketTimer);  // renew at 80% of its life; a stream already open stays open
  state.ticketTimer = setTimeout(() => refreshTicket().catch(() => {}),
                                 Math.max(5000, (body.expires_at * 1000 - Date.now()) * 0.8));
}

function reopenWhenClosed(source, reopen) {
  // a stream whose reconnect was refused (an expired ticket) closes: reopen it with a fresh ticket
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) setTimeout(() => refreshTicket().then(reopen).catch(() => {}), 1000);
  });
}

function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = !message;
}

function setConnection(text, mode) {
  const badge = $("#connection");
  badge.textContent = text;
  badge.dataset.state = mode;
}

async function api(path) {
  const resp = await fetch(path, { headers: { Authorization: "Bearer " + state.token } });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(`${resp.status}: ${body.error || resp.statusText}`);
  return body;
}

// -- worklist ----------------------------------------------------------------------
function connectWorklist() {
  if (state.list) state.list.close();
  const source = new EventSource(withToken("/events"));
  state.list = source;
  reopenWhenClosed(source, connectWorklist);
  source.onopen = () => setConnection("live", "live");
  source.onerror = () => setConnection(source.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting…",
                                       "error");
  source.addEventListener("reset", () => { state.rows.clear(); $("#worklist tbody").replaceChildren(); });
  for (const type of EVENT_TYPES) {
    source.addEventListener(type, (ev) => upsertRow(JSON.parse(ev.data).study));
  }
}

function upsertRow(summary) {
  let row = state.rows.get(summary.study_uid);
  if (!row) {
    row = el("tr", { class: "study-row" });
    row.dataset.studyUid = summary.study_uid;
    row.addEventListener("click", () => openStudy(summary.study_uid));
    state.rows.set(summary.study_uid, row);
  }
  const flags = el("td", { class: "flags" });
  for (const f of summary.qc_flags) flags.append(el("span", { class: "flag", text: f, title: f }));
  if (summary.not_analysable) flags.prepend(el("span", { class: "flag", text: `${summary.not_analysable} not analysable` }));
  const status = el("span", { class: "badge status", text: summary.status });
  status.dataset.state = summary.status;
  row.replaceChildren(
    el("td", { title: summary.study_uid }, el("code", { text: "…" + summary.study_uid.slice(-14) })),
    el("td", { class: "site", text: summary.site || "—" }),
    el("td", {}, status),
    el("td", { class: "images", text: String(summary.images) +
                                   (summary.expected_instances ? ` / ${summary.expected_instances}` : "") }),
    el("td", { class: "findings", text: (summary.findings ? `${summary.findings} (${summary.labels.join(", ")})` : "none") +
                                     (summary.overridden ? ` · ${summary.overridden} overridden` : "") }),
    flags,
    el("td", { class: "updated", text: summary.updated_at ? new Date(summary.updated_at).toLocaleTimeString() : "" }),
  );
  row.classList.toggle("selected", summary.study_uid === state.studyUid);
  $("#worklist tbody").prepend(row);  // most recently updated first
  $("#worklist-empty").hidden = true;
  $("#study-count").textContent = `${state.rows.size} ${state.rows.size === 1 ? "study" : "studies"}`;
  if (summary.study_uid === state.studyUid) scheduleRefresh();
}

// -- study view --------------------------------------------------------------------
function openStudy(uid) {
  if (state.study) state.study.close();
  state.studyUid = uid;
  history.replaceState(null, "", "#study=" + encodeURIComponent(uid));
  for (const [key, row] of state.rows) row.classList.toggle("selected", key === uid);
  $("#study").hidden = false;
  $("#study-uid").textContent = uid;
  $("#images").replaceChildren();
  const source = new EventSource(withToken(`/studies/${encodeURIComponent(uid)}/events`));
  state.study = source;
  reopenWhenClosed(source, () => { if (state.studyUid === uid) openStudy(uid); });
  for (const type of EVENT_TYPES) source.addEventListener(type, scheduleRefresh);
  source.addEventListener("reset", scheduleRefresh);
  scheduleRefresh();
}

function closeStudy() {
  if (state.study) state.study.close();
  state.study = state.studyUid = null;
  $("#study").hidden = true;
  history.replaceState(null, "", "#");
}

function scheduleRefresh() {
  // Many events arrive in bursts (replay); fetch the folded state once per burst.
  clearTimeout(state.refresh);
  state.refresh = setTimeout(refreshStudy, 80);
}

async function refreshStudy() {
  const uid = state.studyUid;
  if (!uid) return;
  try {
    const study = await api(`/studies/${encodeURIComponent(uid)}`);
    if (uid === state.studyUid) renderStudy(study);
    showError("");
  } catch (err) {
    if (!String(err.message).startsWith("404")) showError(err.message);
  }
}

function renderStudy(study) {
  const status = $("#study-status");
  status.textContent = study.status + (study.completion ? ` (${study.completion})` : "");
  status.dataset.state = study.status;
  const meta = $("#study-meta");
  meta.replaceChildren();
  const versions = Object.entries(study.model_versions).map(([m, v]) => `${m} ${v}`).join(", ") || "—";
  for (const [k, v] of [["Site", study.site || "—"], ["Images", `${study.image_count}`],
                        ["Model versions", versions], ["Config version", `v${study.config_version}`],
                        ["Last event", study.last_event_id || "—"]]) {
    meta.append(el("dt", { text: k }), el("dd", { class: "meta-" + k.toLowerCase().replace(/ /g, "-"), text: v }));
  }
  $("#images").replaceChildren(...study.images.map((img) => renderImage(study, img)));
}

function findingFor(box, findings) {
  return (findings || []).find((f) => f.box && f.label === box.label &&
                               f.box.every((v, i) => Math.abs(v - box.box[i]) < 1e-6));
}

function overrideNote(finding) {
  // A radiologist's verdict (findings.overrides): "rejected by dr-x at 10:31:02: reason".
  const o = finding && finding.override;
  if (!o) return null;
  const note = el("div", { class: "override", text: `${o.verdict} by ${o.by} at ${new Date(o.at).toLocaleTimeString()}` +
                                                      (o.reason ? `: ${o.reason}` : "") });
  note.dataset.verdict = o.verdict;
  return note;
}

function verdictClass(finding) {
  return finding && finding.override ? ` overridden ${finding.override.verdict}` : "";
}

function renderImage(study, img) {
  const frame = el("div", { class: "frame" });
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${img.columns || 1} ${img.rows || 1}`);
  svg.setAttribute("preserveAspectRatio", "none");
  // Labels scale with the image: about 1/24 of its larger side, whatever the pixel size.
  const fontSize = () => Math.max(8, Math.round(Math.max(img.columns || 256, img.rows || 256) / 24));
  if (img.image_url) {
    const picture = el("img", { alt: `display image of ${img.sop_uid}`, src: withToken(img.image_url) });
    picture.addEventListener("load", () => {
      if (!img.columns) svg.setAttribute("viewBox", `0 0 ${picture.naturalWidth} ${picture.naturalHeight}`);
    });
    frame.append(picture);
  } else {
    frame.append(el("p", { class: "muted", text: "no display image yet" }));
  }
  frame.append(svg);
  const list = el("ul", { class: "box-list" });
  (img.fused_boxes || []).forEach((box, i) => {
    const finding = findingFor(box, img.findings);
    const [x1, y1, x2, y2] = box.box;
    const g = document.createElementNS(SVG_NS, "g");
    g.setAttribute("class", "box" + (finding ? "" : " no-finding") + verdictClass(finding));
    g.dataset.label = box.label;
    if (finding) g.dataset.rule = finding.rule_id;
    const rect = document.createElementNS(SVG_NS, "rect");
    for (const [k, v] of [["x", x1], ["y", y1], ["width", x2 - x1], ["height", y2 - y1]]) rect.setAttribute(k, v);
    const text = document.createElementNS(SVG_NS, "text");
    text.setAttribute("x", x1);
    text.setAttribute("y", Math.max(fontSize(), y1 - 4));
    text.setAttribute("font-size", fontSize());
    text.textContent = `${i + 1} ${box.label} ${box.score.toFixed(2)}`;
    g.append(rect, text);
    svg.append(g);
    const sources = box.sources.map((s) => `${s.model} ${s.score.toFixed(2)}`).join(", ");
    const item = el("li", { class: "box-item" + (finding ? "" : " no-finding") + verdictClass(finding) },
      el("strong", { text: `${i + 1}. ${box.label}` }),
      el("div", { class: "confidence", text: `calibrated confidence ${box.score.toFixed(3)}` }),
      el("div", { class: "sources", text: `models: ${sources || "—"}` }),
      finding ? el("div", { class: "rule", text: `rule ${finding.rule_id} v${finding.rule_version} ` +
                            `(≥ ${Object.values(finding.thresholds).map((t) => t.toFixed(2)).join(", ")})` })
              : el("div", { class: "muted", text: "below threshold: no finding" }));
    const note = overrideNote(finding);
    if (note) item.append(note);
    if (finding) item.dataset.findingId = finding.finding_id;
    list.append(item);
  });
  for (const f of (img.findings || []).filter((f) => !f.box)) {
    const item = el("li", { class: "box-item" + verdictClass(f) }, el("strong", { text: f.label }),
      el("div", { class: "confidence", text: `calibrated confidence ${f.confidence.toFixed(3)}` }),
      el("div", { class: "rule", text: `rule ${f.rule_id} v${f.rule_version}` }));
    const note = overrideNote(f);
    if (note) item.append(note);
    item.dataset.findingId = f.finding_id;
    list.append(item);
  }
  const side = el("div", { class: "details" },
    el("h3", { text: `…${img.sop_uid.slice(-20)}${img.frame ? " #" + img.frame : ""}` }),
    el("div", { class: "image-meta muted", text: [img.modality, img.body_part, img.view_position]
                                                   .filter(Boolean).join(" · ") || "metadata pending" }));
  if (img.status === "NOT_ANALYSABLE") side.append(el("div", { class: "not-analysable", text: "NOT ANALYSABLE" }));
  for (const f of img.qc_flags) side.append(el("span", { class: "flag qc-flag", text: f }));
  if (img.missing_models.length) side.append(el("span", { class: "flag", text: "missing: " + img.missing_models.join(", ") }));
  if (img.findings === null) side.append(el("div", { class: "muted", text: "waiting for fusion…" }));
  side.append(list);
  const card = el("article", { class: "image" }, frame, side);
  card.dataset.sopUid = img.sop_uid;
  return card;
}

// -- start -------------------------------------------------------------------------
async function connect() {
  try {
    await api("/studies");  // EventSource cannot report 401/403, so check the token first
    await refreshTicket();
  } catch (err) {
    setConnection("not connected", "error");
    showError("cannot connect: " + err.message);
    return;
  }
  showError("");
  connectWorklist();
  const wanted = new URLSearchParams(location.hash.slice(1)).get("study");
  if (wanted) openStudy(wanted);
}

$("#login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  state.token = $("#token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, state.token);
  connect();
});
$("#close-study").addEventListener("click", closeStudy);
$("#token").value = state.token;
if (state.token) connect();
