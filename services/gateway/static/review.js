// What a radiologist reads beside an image: its findings (rules that fired) with their provenance and
// verdicts, the sub-threshold candidates behind a toggle, and the confirm / reject controls.
import { el } from "./dom.js";

function findingFor(box, findings) {
  return (findings || []).find((f) => f.box && f.label === box.label &&
                               f.box.every((v, i) => Math.abs(v - box.box[i]) < 1e-6));
}

// The image's fused boxes as marks: findings numbered from `counter.findings`, candidates `c1, c2...`.
export function imageMarks(image, counter) {
  const marks = [];
  const shown = new Set();
  for (const box of image.fused_boxes || []) {
    const finding = findingFor(box, image.findings) || null;
    const tag = finding ? String(++counter.findings) : `c${++counter.candidates}`;
    if (finding) shown.add(finding.finding_id);
    marks.push({ tag, box: box.box, label: box.label, score: box.score, sources: box.sources, finding,
                 candidate: !finding, verdict: finding && finding.override ? finding.override.verdict : null });
  }
  // every other finding: a classifier's rule (no box: listed, not drawn), or a box no fused box matches
  for (const f of (image.findings || []).filter((f) => !shown.has(f.finding_id))) {
    marks.push({ tag: String(++counter.findings), box: f.box || null, label: f.label, score: f.confidence,
                 sources: [], finding: f, candidate: false, verdict: f.override ? f.override.verdict : null });
  }
  return marks;
}

function overrideNote(finding) {
  // A radiologist's verdict (findings.overrides): "rejected by dr-x at 10:31:02: reason".
  const o = finding && finding.override;
  if (!o) return null;
  const via = o.via ? ` (signed by ${o.via})` : "";
  const note = el("div", { class: "override", text: `${o.verdict} by ${o.by} at ${new Date(o.at).toLocaleTimeString()}` +
                                                      (o.reason ? `: ${o.reason}` : "") + via });
  note.dataset.verdict = o.verdict;
  return note;
}

let formCount = 0;

function rejectForm(mark, ctx) {
  const name = `reason-${++formCount}`;
  const what = `finding ${mark.tag} (${mark.label})`;
  const legend = el("legend", { text: `Why reject ${what}?` });
  const radios = ctx.reasons.map((reason, i) => el("label", { class: "reason" },
    el("input", { type: "radio", name, value: reason, ...(i === 0 ? { required: "" } : {}) }), " " + reason));
  const note = el("input", { type: "text", class: "note", maxlength: "500", id: `${name}-note`,
                             placeholder: "free text (needed for “other”)" });
  const form = el("form", { class: "reject-form", "aria-label": `Reject ${what}` },
    el("fieldset", {}, legend, ...radios),
    el("label", { for: `${name}-note`, text: "Note" }), note,
    el("div", { class: "form-actions" },
      el("button", { type: "submit", class: "submit-reject", text: "Reject finding" }),
      el("button", { type: "button", class: "cancel", text: "Cancel" })));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const chosen = form.querySelector(`input[name="${name}"]:checked`);
    ctx.onVerdict(mark, "rejected", chosen ? chosen.value : "", note.value.trim());
  });
  form.querySelector(".cancel").addEventListener("click", () => ctx.onCancel(mark));
  form.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") { ev.stopPropagation(); ctx.onCancel(mark); }
  });
  return form;
}

function findingItem(mark, ctx) {
  const f = mark.finding;
  const thresholds = Object.values(f.thresholds || {}).map((t) => t.toFixed(2)).join(", ");
  const sources = (mark.sources || []).map((s) => `${s.model} ${s.score.toFixed(2)}`).join(", ");
  const selected = f.finding_id === ctx.selectedId;
  const item = el("li", { class: "box-item finding" + (mark.verdict ? ` overridden ${mark.verdict}` : "") +
                                 (selected ? " selected" : ""), tabindex: "-1" },
    el("strong", { text: `${mark.tag}. ${mark.label}` }),
    el("div", { class: "confidence", text: `calibrated confidence ${mark.score.toFixed(3)}` }),
    mark.box ? el("div", { class: "sources", text: `models: ${sources || "—"}` }) : null,
    el("div", { class: "rule", text: `rule ${f.rule_id} v${f.rule_version}` + (thresholds ? ` (≥ ${thresholds})` : "") }),
    overrideNote(f));
  item.dataset.findingId = f.finding_id;
  if (selected) item.setAttribute("aria-current", "true");
  const why = ctx.canOverride ? "" : "this gateway records no verdicts (no signing key, or no identity)";
  const confirm = el("button", { type: "button", class: "confirm", text: "Confirm",
                                 "aria-label": `Confirm finding ${mark.tag}: ${mark.label}` });
  const reject = el("button", { type: "button", class: "reject", text: "Reject…",
                                "aria-label": `Reject finding ${mark.tag}: ${mark.label}` });
  for (const b of [confirm, reject]) { b.disabled = !ctx.canOverride; if (why) b.title = why; }
  confirm.addEventListener("click", () => ctx.onVerdict(mark, "confirmed", "", ""));
  reject.addEventListener("click", () => ctx.onReject(mark));
  item.append(el("div", { class: "actions" }, confirm, reject));
  if (ctx.rejectingId === f.finding_id) item.append(rejectForm(mark, ctx));
  item.addEventListener("click", (ev) => { if (!ev.target.closest("button, form")) ctx.onSelect(f.finding_id); });
  item.addEventListener("pointerenter", () => ctx.onHover(mark, true));
  item.addEventListener("pointerleave", () => ctx.onHover(mark, false));
  return item;
}

function candidateItem(mark) {
  const sources = (mark.sources || []).map((s) => `${s.model} ${s.score.toFixed(2)}`).join(", ");
  return el("li", { class: "box-item no-finding candidate" },
    el("strong", { text: `${mark.tag}. ${mark.label}` }),
    el("div", { class: "confidence", text: `calibrated confidence ${mark.score.toFixed(3)}` }),
    el("div", { class: "sources", text: `models: ${sources || "—"}` }),
    el("div", { class: "muted", text: "below threshold: no finding" }));
}

// The details column of one image card.
export function renderDetails(container, image, marks, ctx) {
  const findings = marks.filter((m) => !m.candidate);
  const candidates = marks.filter((m) => m.candidate);
  const head = [
    el("h3", { text: `…${image.sop_uid.slice(-20)}${image.frame ? " #" + image.frame : ""}` }),
    el("div", { class: "image-meta muted", text: [image.modality, image.body_part, image.view_position]
                                                   .filter(Boolean).join(" · ") || "metadata pending" }),
  ];
  if (image.status === "NOT_ANALYSABLE") head.push(el("div", { class: "not-analysable", text: "NOT ANALYSABLE" }));
  for (const f of image.qc_flags || []) head.push(el("span", { class: "flag qc-flag", text: f }));
  if ((image.missing_models || []).length) head.push(el("span", { class: "flag", text: "missing: " + image.missing_models.join(", ") }));
  if (image.findings === null) head.push(el("div", { class: "muted", text: "waiting for fusion…" }));
  const list = el("ol", { class: "box-list findings-list", "aria-label": "findings" },
                  ...findings.map((m) => findingItem(m, ctx)));
  const parts = [...head, el("h4", { text: `Findings (${findings.length})` })];
  parts.push(findings.length ? list : el("p", { class: "muted no-findings", text: image.findings === null ? "" : "No rule fired." }));
  if (candidates.length && ctx.showCandidates) {
    parts.push(el("h4", { text: `Candidates below threshold (${candidates.length})` }),
               el("ol", { class: "box-list candidates-list", "aria-label": "candidates below threshold" },
                  ...candidates.map(candidateItem)));
  }
  container.replaceChildren(...parts);
}
