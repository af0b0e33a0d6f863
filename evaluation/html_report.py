"""The self-contained HTML report: tables from the metrics document, figures inlined as base64 PNG."""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path

from radstream.evaluation import plots

_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1150px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#eef3f7}td:first-child,th:first-child{text-align:left}
.warn{background:#fff4e0;border-left:4px solid #e6a23c;padding:6px 10px;margin:4px 0;font-size:13px}
.note{color:#555;font-size:13px}img{margin:4px;border:1px solid #eee}
"""
_SHOWN = ("sensitivity", "specificity", "ppv", "npv", "f1", "prevalence")


def _num(v) -> str:
    return "–" if v is None else f"{v:.3f}"


def _with_ci(m: dict, name: str) -> str:
    lo, hi = m.get(f"{name}_ci", [None, None])
    ci = f" <span class=note>[{_num(lo)}, {_num(hi)}]</span>" if lo is not None else ""
    return _num(m.get(name)) + ci


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _metrics_table(rows: dict[str, dict], first: str, extra: tuple[str, ...] = ()) -> str:
    head = "".join(f"<th>{h}</th>" for h in (first, "n", "TP", "FP", "TN", "FN", *_SHOWN, *extra))
    body = []
    for name, m in rows.items():
        cells = [escape(name), str(m["n_studies"]), *(str(m[k]) for k in ("tp", "fp", "tn", "fn"))]
        cells += [_with_ci(m, k) for k in (*_SHOWN, *extra)]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def render_html(doc: dict) -> str:
    parts = [f"<!doctype html><html><head><meta charset=utf-8><title>radstream evaluation</title>"
             f"<style>{_STYLE}</style></head><body><h1>radstream evaluation</h1>"]
    mode = doc.get("mode", {})
    parts.append(f"<p class=note>{escape(mode.get('description', ''))} Intervals: "
                 f"{escape(doc['settings']['interval'])}, {doc['settings']['resamples']} resamples, "
                 f"seed {doc['settings']['seed']}.</p>")
    if doc["warnings"]:
        parts.append("<h2>Warnings</h2>" + "".join(f"<div class=warn>{escape(w)}</div>" for w in doc["warnings"]))
    labels = doc["labels"]
    extra = tuple(k for k in ("roc_auc", "weighted_sensitivity") if any(k in m for m in labels.values()))
    parts.append("<h2>Per label</h2>" + _metrics_table(labels, "label", extra))
    if "weighted_sensitivity" in extra:
        weights = ", ".join(f"{k} {v:g}" for k, v in doc["settings"]["tier_weights"].items())
        parts.append(f"<p class=note>Weighted sensitivity weighs each positive by its tier ({escape(weights)}; "
                     f"other tiers 1).</p>")
    deployed = {k: m["deployment"] for k, m in labels.items() if "deployment" in m}
    if deployed:
        rows = "".join(f"<tr><td>{escape(k)}</td><td>{d['prevalence']:g}</td><td>{_with_ci(d, 'ppv')}</td>"
                       f"<td>{_with_ci(d, 'npv')}</td></tr>" for k, d in deployed.items())
        parts.append("<h2>At the deployment prevalence</h2><table><tr><th>label</th><th>prevalence</th>"
                     f"<th>PPV</th><th>NPV</th></tr>{rows}</table>")
    for label, m in labels.items():
        parts.append(f"<h2>{escape(label)}</h2>")
        sweep = doc.get("sweep", {}).get(label)
        if sweep:
            parts.append(_img(plots.roc_pr_figure(label, sweep, m), f"{label} ROC and PR"))
        parts.append(_img(plots.confusion_figure(label, m), f"{label} confusion matrix"))
        if sweep:
            parts.append(_img(plots.reliability_figure(label, sweep["reliability"]), f"{label} reliability"))
    for name, groups in doc.get("breakdowns", {}).items():
        parts.append(f"<h2>By {escape(name)}</h2>")
        if "unavailable" in groups:
            parts.append(f"<p class=note>{escape(groups['unavailable'])}</p>")
            continue
        for group, by_label in groups.items():
            parts.append(f"<p><b>{escape(group)}</b></p>" + _metrics_table(by_label, "label"))
    if doc.get("operating_points"):
        rows = "".join(
            f"<tr><td>{escape(p['pick'])}</td><td>{_num(p['threshold'])}</td><td>{escape(p['threshold_key'])}</td>"
            + "".join(f"<td>{_num(p.get(k))}</td>" for k in ("sensitivity", "specificity", "ppv", "npv")) + "</tr>"
            for p in doc["operating_points"])
        parts.append("<h2>Operating points</h2><table><tr><th>pick</th><th>threshold</th><th>key</th>"
                     f"<th>sensitivity</th><th>specificity</th><th>PPV</th><th>NPV</th></tr>{rows}</table>")
    for label, f in doc.get("froc", {}).items():
        head = "".join(f"<th>{k}</th>" for k in f["sensitivity_at_fp_per_image"])
        cells = "".join(f"<td>{_num(v)}</td>" for v in f["sensitivity_at_fp_per_image"].values())
        parts.append(f"<h2>FROC: {escape(label)}</h2><p class=note>{f['lesions']} lesions on {f['images']} images; "
                     f"mean sensitivity {_num(f['mean_sensitivity'])}.</p><table><tr><th>FP / image</th>{head}</tr>"
                     f"<tr><td>sensitivity</td>{cells}</tr></table>" + _img(plots.froc_figure(label, f), f"{label} FROC"))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(doc: dict, out_dir: Path, json_doc: dict | None = None) -> tuple[Path, Path]:
    """report.html (from doc) and metrics.json (json_doc, default doc) in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_path, html_path = out_dir / "metrics.json", out_dir / "report.html"
    metrics_path.write_text(json.dumps(doc if json_doc is None else json_doc, indent=2) + "\n", encoding="utf-8")
    html_path.write_text(render_html(doc), encoding="utf-8")
    return metrics_path, html_path
