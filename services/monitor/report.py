"""The monitoring report: one self-contained HTML page (figures inlined as base64 PNG), written
by `radstream monitor report` and served live, scoped, by the gateway's /monitoring."""

from __future__ import annotations

import base64
from html import escape
from typing import Any

from radstream.services.monitor import plots
from radstream.streams.monitoring import MonitorState
from radstream.services.times import iso

Histograms = dict[tuple[str, str], tuple[list[float], list[float]]]  # (group, feature) -> reference, current

_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1150px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:28px}
h3{font-size:15px}table{border-collapse:collapse;margin:8px 0;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#eef3f7}
td:first-child,th:first-child{text-align:left}
.warn{background:#fff4e0;border-left:4px solid #e6a23c;padding:6px 10px;margin:4px 0;font-size:13px}
.note{color:#555;font-size:13px}img{margin:4px;border:1px solid #eee}
"""
MAX_HISTOGRAMS = 8


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return ""
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _agreement_table(first: str, table: dict[str, dict[str, Any]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in (first, "findings", "judged", "confirmed", "rejected", "PPV",
                                               "95% CI (Wilson)", "override rate", "rejection reasons"))
    rows = []
    for key, t in table.items():
        ci = f"{_num(t['ppv_ci95'][0])} – {_num(t['ppv_ci95'][1])}" if t["ppv_ci95"] else "–"
        reasons = ", ".join(f"{escape(r)} ({n})" for r, n in t["rejection_reasons"].items())
        cells = [escape(key), t["findings"], t["judged"], t["confirmed"], t["rejected"], _num(t["ppv"]), ci,
                 _num(t["override_rate"]), reasons]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _drift_table(drift: dict[str, dict[str, Any]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("feature", "PSI", "KS", "KS critical", "reference n", "current n",
                                               "alarm"))
    rows = ["<tr>" + "".join(f"<td>{c}</td>" for c in (
        escape(name), _num(d["psi"]), _num(d["ks"]), _num(d["ks_critical"]), d["n_reference"], d["n_current"],
        "ALARM" if d["alarm"] else "")) + "</tr>" for name, d in drift.items()]
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def alarm_histograms(snapshot: dict[str, Any], state: MonitorState) -> Histograms:
    """Copies of the windows behind the snapshot's alarms (up to MAX_HISTOGRAMS), so the page can be
    drawn away from the thread that keeps the state."""
    alarmed = [(g, f) for g, d in snapshot["drift"].items() for f in d["alarms"]][:MAX_HISTOGRAMS]
    return {(g, f): state.window_values(g, f) for g, f in alarmed}


def render_html(snapshot: dict[str, Any], histograms: Histograms | None = None, scope: str = "every site",
                since_ms: int = 0) -> str:
    """The report of one `MonitorState.snapshot`, with the alarmed features' histograms."""
    histograms = histograms or {}
    agreement, drift = snapshot["agreement"], snapshot["drift"]
    parts = [f"<!doctype html><html><head><meta charset=utf-8><title>radstream monitoring</title>"
             f"<style>{_STYLE}</style></head><body><h1>radstream monitoring</h1>",
             f"<p class=note>Generated {iso(snapshot['generated_at'])} for {escape(scope)}"
             + (f", results and verdicts since {iso(since_ms)}" if since_ms else "")
             + f". Drift windows: {snapshot['window_studies']} studies (reference: a group's first studies, or "
             f"a pinned file; current: its latest); alarm when PSI &ge; {snapshot['psi_threshold']} and the "
             f"two-sample KS statistic &ge; its critical value at alpha 0.001.</p>"]
    alarms = [(g, f) for g, d in drift.items() for f in d["alarms"]]
    parts.append("<h2>Alarms</h2>" + ("".join(
        f"<div class=warn>{escape(g)}: {escape(f)} drifts (PSI {_num(drift[g]['drift'][f]['psi'])}, KS "
        f"{_num(drift[g]['drift'][f]['ks'])})</div>" for g, f in alarms) or "<p class=note>none</p>"))
    overall = agreement["overall"]
    parts.append("<h2>Agreement from overrides</h2><p class=note>PPV = confirmed / (confirmed + rejected); "
                 "a finding nobody judged counts in neither. Override rate = judged / findings.</p>"
                 + _agreement_table("", {"all findings": overall}))
    for dimension, title in (("rule", "Per rule"), ("model", "Per model"), ("site", "Per site"),
                             ("week", "Per ISO week")):
        parts.append(f"<h3>{title}</h3>" + _agreement_table(dimension, agreement[dimension])
                     + _img(plots.ppv_figure(f"PPV {title.lower()}", agreement[dimension]), f"PPV {title}"))
    parts.append("<h2>Drift</h2>")
    if not drift:
        parts.append("<p class=note>no final results yet</p>")
    for group, d in drift.items():
        parts.append(f"<h3>{escape(group)}</h3><p class=note>sites {escape(', '.join(d['sites']))}; reference "
                     f"{'pinned' if d['pinned_reference'] else str(d['reference_studies']) + ' studies'}, current "
                     f"{d['current_studies']} studies" + ("" if d["drift"] else " (not judged until both windows "
                                                                                  "are full)") + "</p>")
        if d["drift"]:
            parts.append(_drift_table(d["drift"]) + _img(plots.psi_figure(group, d["drift"],
                                                                           snapshot["psi_threshold"]), "PSI"))
        for feature in d["alarms"]:
            if (group, feature) in histograms:
                parts.append(_img(plots.histogram_figure(group, feature, *histograms[(group, feature)]),
                                  f"{group} {feature}"))
    parts.append("</body></html>")
    return "".join(parts)
