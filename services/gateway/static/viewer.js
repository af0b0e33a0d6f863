// radstream viewer: a live worklist over GET /events and a study view over GET /studies/{uid}/events.
// Plain DOM and ES modules, no build step. Data is only ever written with textContent (never parsed as HTML).
import { el } from "./dom.js";
import { ImageView } from "./image_view.js";
import { imageMarks, renderDetails } from "./review.js";

const TOKEN_KEY = "radstream.token";
const $ = (sel) => document.querySelector(sel);
const EVENT_TYPES = ["image.decoded", "inference.results", "findings.fused", "study.results", "findings.overrides"];
const DEFAULT_REASONS = ["artefact", "normal anatomy", "known or old finding", "wrong location", "wrong label", "other"];

const state = { token: sessionStorage.getItem(TOKEN_KEY) || "", ticket: "", list: null, study: null, studyUid: null,
                rows: new Map(), refresh: null, me: null, views: new Map(), marks: [], selected: null,
                rejecting: null, showCandidates: false, latest: null };

// The one place a URL gets a credential: EventSource and <img> cannot send an Authorization header,
// so they carry a short-lived ticket (POST /session/ticket), never the token itself, which stays in
// the header of fetch() calls.
function withToken(url) {
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

function say(message) {
  $("#review-status").textContent = message;
}

function setConnection(text, mode) {
  const badge = $("#connection");
  badge.textContent = text;
  badge.dataset.state = mode;
}

async function api(path, options = {}) {
  const headers = { Authorization: "Bearer " + state.token, ...(options.body ? { "Content-Type": "application/json" } : {}) };
  const resp = await fetch(path, { ...options, headers });
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
  const open = el("button", { type: "button", class: "open-study", title: summary.study_uid,
                              "aria-label": `Open study ${summary.study_uid}` },
                  el("code", { text: "…" + summary.study_uid.slice(-14) }));
  row.replaceChildren(
    el("td", {}, open),
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
  state.selected = state.rejecting = state.latest = null;
  state.views = new Map();
  history.replaceState(null, "", "#study=" + encodeURIComponent(uid));
  for (const [key, row] of state.rows) row.classList.toggle("selected", key === uid);
  document.body.classList.add("study-open");
  $("#study").hidden = false;
  $("#study-uid").textContent = uid;
  $("#images").replaceChildren();
  say("");
  followStudy(uid);
}

function followStudy(uid) {
  // reopened with a fresh ticket when a reconnect was refused; the view (zoom, window, selection) stays
  const source = new EventSource(withToken(`/studies/${encodeURIComponent(uid)}/events`));
  state.study = source;
  reopenWhenClosed(source, () => { if (state.studyUid === uid) followStudy(uid); });
  for (const type of EVENT_TYPES) source.addEventListener(type, scheduleRefresh);
  source.addEventListener("reset", scheduleRefresh);
  scheduleRefresh();
}

function closeStudy() {
  if (state.study) state.study.close();
  state.study = state.studyUid = null;
  $("#study").hidden = true;
  document.body.classList.remove("study-open");
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
    if (uid === state.studyUid) {
      state.latest = study;
      if (!state.rejecting) renderStudy(study);  // never rebuild a reject form while it is being filled in
    }
    showError("");
  } catch (err) {
    if (!String(err.message).startsWith("404")) showError(err.message);
  }
}

function imageKey(img) {
  return `${img.sop_uid}#${img.frame || 0}`;
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
  const counter = { findings: 0, candidates: 0 };
  state.marks = [];
  const cards = [];
  study.images.forEach((img, index) => {
    const key = imageKey(img);
    let view = state.views.get(key);
    if (!view) {
      view = new ImageView(img, { urlFor: withToken, fetchJson: api, index,
                                  onBoxHover: (mark, on) => highlightItem(mark, on) });
      state.views.set(key, view);
    }
    view.update(img);
    const marks = imageMarks(img, counter);
    for (const m of marks) if (!m.candidate) state.marks.push({ ...m, view });
    view.drawMarks(marks.filter((m) => m.box), { showCandidates: state.showCandidates, selectedId: state.selected });
    renderDetails(view.details, img, marks, reviewContext());
    cards.push(view.root);
  });
  const images = $("#images");
  if (cards.length !== images.children.length || cards.some((c, i) => images.children[i] !== c)) {
    images.replaceChildren(...cards);
  }
  $("#candidate-count").textContent = counter.candidates ? `(${counter.candidates})` : "(none)";
}

function reviewContext() {
  return {
    showCandidates: state.showCandidates, selectedId: state.selected, rejectingId: state.rejecting,
    canOverride: Boolean(state.me && state.me.overrides),
    reasons: (state.me && state.me.rejection_reasons) || DEFAULT_REASONS,
    onSelect: (id) => select(id),
    onVerdict: (mark, verdict, reason, note) => sendVerdict(mark, verdict, reason, note),
    onReject: (mark) => startReject(mark),
    onCancel: (mark) => { state.rejecting = null; rerender(); focusItem(mark.finding.finding_id); },
    onHover: (mark, on) => { const v = viewOf(mark); if (v) v.showSources(on ? mark : v.pinned); },
  };
}

function rerender() {
  if (state.latest) renderStudy(state.latest);
}

function viewOf(mark) {
  const entry = state.marks.find((m) => m.finding && mark.finding && m.finding.finding_id === mark.finding.finding_id);
  return entry ? entry.view : null;
}

function highlightItem(mark, on) {
  if (!mark.finding) return;
  const item = document.querySelector(`#images li.box-item[data-finding-id="${CSS.escape(mark.finding.finding_id)}"]`);
  if (item) item.classList.toggle("hovered", on);
}

function focusItem(findingId) {
  const item = document.querySelector(`#images li.box-item[data-finding-id="${CSS.escape(findingId)}"]`);
  if (item) { item.focus({ preventScroll: true }); item.scrollIntoView({ block: "nearest" }); }
  return item;
}

// -- review: selection, verdicts ---------------------------------------------------
function select(findingId) {
  state.selected = findingId;
  rerender();
  const mark = state.marks.find((m) => m.finding.finding_id === findingId);
  if (mark && mark.box) mark.view.centerOn(mark.box);
  focusItem(findingId);
  if (mark) say(`finding ${mark.tag} of ${state.marks.length}: ${mark.label} ${mark.score.toFixed(2)}`);
}

function step(delta) {
  if (!state.marks.length) { say("no findings in this study"); return; }
  const at = state.marks.findIndex((m) => m.finding.finding_id === state.selected);
  const next = at < 0 ? (delta > 0 ? 0 : state.marks.length - 1) : (at + delta + state.marks.length) % state.marks.length;
  select(state.marks[next].finding.finding_id);
}

function selectedMark() {
  const mark = state.marks.find((m) => m.finding.finding_id === state.selected);
  if (!mark) say("select a finding first (n / p)");
  return mark;
}

function startReject(mark) {
  state.selected = mark.finding.finding_id;
  state.rejecting = mark.finding.finding_id;
  rerender();
  const item = focusItem(mark.finding.finding_id);
  const first = item && item.querySelector(".reject-form input[type=radio]");
  if (first) first.focus();
}

async function sendVerdict(mark, verdict, reason, note) {
  if (!(state.me && state.me.overrides)) { showError("this gateway records no verdicts"); return; }
  const id = mark.finding.finding_id;
  const body = verdict === "rejected" ? { verdict, reason, note } : { verdict, ...(note ? { note } : {}) };
  try {
    const out = await api(`/studies/${encodeURIComponent(state.studyUid)}/findings/${encodeURIComponent(id)}/override`,
                          { method: "POST", body: JSON.stringify(body) });
    showError("");
    say(`finding ${mark.tag} ${out.override.verdict} as ${out.override.by}`);
    if (state.rejecting === id) state.rejecting = null;
    rerender();
    focusItem(id);
  } catch (err) {
    showError("verdict not recorded: " + err.message);  // the form stays open with what was typed
  }
}

function activeView() {
  const mark = state.marks.find((m) => m.finding.finding_id === state.selected);
  if (mark) return mark.view;
  const focused = document.activeElement && document.activeElement.closest("article.image");
  for (const view of state.views.values()) if (view.root === focused) return view;
  return state.views.values().next().value || null;
}

document.addEventListener("keydown", (ev) => {
  if (!state.studyUid || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (ev.target.closest && ev.target.closest("input, select, textarea, [contenteditable]")) return;
  const view = activeView();
  const actions = {
    n: () => step(1), p: () => step(-1),
    c: () => { const m = selectedMark(); if (m) sendVerdict(m, "confirmed", "", ""); },
    r: () => { const m = selectedMark(); if (m) startReject(m); },
    "+": () => view && view.zoomBy(1.5), "=": () => view && view.zoomBy(1.5),
    "-": () => view && view.zoomBy(1 / 1.5), "0": () => view && view.fit(),
  };
  const action = actions[ev.key];
  if (action) { ev.preventDefault(); action(); }
});

// -- start -------------------------------------------------------------------------
async function connect() {
  try {
    state.me = await api("/me");  // EventSource cannot report 401/403, so check the token first
    await refreshTicket();
  } catch (err) {
    setConnection("not connected", "error");
    showError("cannot connect: " + err.message);
    return;
  }
  const who = $("#identity");
  who.textContent = `signed in as ${state.me.identity}` + (state.me.overrides ? "" : " (read only)");
  who.hidden = false;
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
$("#show-candidates").addEventListener("change", (ev) => {
  state.showCandidates = ev.target.checked;
  rerender();
});
$("#token").value = state.token;
if (state.token) connect();
