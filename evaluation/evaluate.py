"""Assemble the metrics document from labels and study-level calls. Pure: data in, a JSON-ready dict out."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from radstream.evaluation.bootstrap import DEFAULT_RESAMPLES, bootstrap_intervals
from radstream.evaluation.curves import average_precision, pr_curve, reliability, roc_auc, roc_curve
from radstream.evaluation.froc import froc
from radstream.evaluation.inputs import EvaluationInputError, LabelRow, TruthBox
from radstream.evaluation.metrics import (
    DEFAULT_TIER_WEIGHTS, as_number, confusion_counts, metrics_from_counts, predictive_values_at, tier_weights,
    weighted_sensitivity)
from radstream.evaluation.operating_point import Pick, pick_operating_point, threshold_key
from radstream.evaluation.study_scores import StudyCall, UNKNOWN

DEFAULT_MIN_POSITIVES = 10
STRATA = ("site", "manufacturer", "view")


@dataclass(frozen=True)
class EvaluationOptions:
    n_resamples: int = DEFAULT_RESAMPLES
    seed: int = 0
    tier_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TIER_WEIGHTS))
    deployment_prevalence: dict[str, float] = field(default_factory=dict)
    min_positives: int = DEFAULT_MIN_POSITIVES
    sweep: bool = False
    picks: tuple[Pick, ...] = ()
    min_iou: float = 0.5


@dataclass(frozen=True)
class LabelTable:
    """One label's studies, aligned arrays."""

    label: str
    study_uids: list[str]
    truth: np.ndarray
    predicted: np.ndarray
    scores: np.ndarray
    tiers: list[str]


def label_tables(labels: list[LabelRow], calls: dict[tuple[str, str], StudyCall]) -> tuple[list[LabelTable], list[str]]:
    """Join ground truth to calls; a labelled study without a call is left out (and reported)."""
    by_label: dict[str, list[tuple[LabelRow, StudyCall]]] = {}
    without_call: set[str] = set()
    for row in labels:
        call = calls.get((row.study_uid, row.label))
        if call is None:
            without_call.add(row.study_uid)
            continue
        by_label.setdefault(row.label, []).append((row, call))
    tables = []
    for label, pairs in sorted(by_label.items()):
        tables.append(LabelTable(
            label, [r.study_uid for r, _ in pairs], np.array([r.value == 1 for r, _ in pairs]),
            np.array([c.positive for _, c in pairs]), np.array([c.score for _, c in pairs], dtype=np.float64),
            [r.tier for r, _ in pairs]))
    return tables, sorted(without_call)


def label_metrics(truth: np.ndarray, predicted: np.ndarray, options: EvaluationOptions, *,
                  scores: np.ndarray | None = None, weights: np.ndarray | None = None,
                  deployment_prevalence: float | None = None) -> dict:
    """Counts, every metric and its `_ci`, in the order the --json output promises."""
    counts = confusion_counts(truth, predicted)
    point = metrics_from_counts(**counts)
    intervals = bootstrap_intervals(truth, predicted, scores=scores, weights=weights,
                                    deployment_prevalence=deployment_prevalence,
                                    n_resamples=options.n_resamples, seed=options.seed)
    out: dict = {"n_studies": int(truth.size), **counts}
    for name, value in point.items():
        out[name] = as_number(value)
        out[f"{name}_ci"] = intervals.get(f"{name}_ci", [None, None])
    if scores is not None:
        out["roc_auc"] = as_number(roc_auc(truth, scores))
        out["roc_auc_ci"] = intervals.get("roc_auc_ci", [None, None])
    if weights is not None:
        out["weighted_sensitivity"] = as_number(weighted_sensitivity(truth, predicted, weights))
        out["weighted_sensitivity_ci"] = intervals.get("weighted_sensitivity_ci", [None, None])
    if deployment_prevalence is not None:
        ppv, npv = predictive_values_at(point["sensitivity"], point["specificity"], deployment_prevalence)
        out["deployment"] = {"prevalence": deployment_prevalence, "ppv": as_number(ppv), "npv": as_number(npv),
                             "ppv_ci": intervals.get("deployment_ppv_ci", [None, None]),
                             "npv_ci": intervals.get("deployment_npv_ci", [None, None])}
    return out


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.2f}"


def _label_warnings(label: str, m: dict, min_positives: int) -> list[str]:
    warnings = []
    positives, negatives = m["tp"] + m["fn"], m["tn"] + m["fp"]
    if positives < min_positives:
        lo, hi = m["sensitivity_ci"]
        warnings.append(f"{label}: only {positives} positive studies (< {min_positives}); its sensitivity "
                        f"interval [{_fmt(lo)}, {_fmt(hi)}] is too wide to mean anything")
    if negatives < min_positives:
        warnings.append(f"{label}: only {negatives} negative studies (< {min_positives}); its specificity "
                        f"interval is too wide to mean anything")
    if "deployment" in m:
        d = m["deployment"]
        warnings.append(f"{label}: PPV {_fmt(m['ppv'])} and NPV {_fmt(m['npv'])} hold at the study prevalence "
                        f"{_fmt(m['prevalence'])}; at the stated deployment prevalence {d['prevalence']:g} they are "
                        f"PPV {_fmt(d['ppv'])} and NPV {_fmt(d['npv'])}")
    else:
        warnings.append(f"{label}: PPV and NPV hold only at the study prevalence {_fmt(m['prevalence'])}; "
                        f"pass --deployment-prevalence {label}=P to see them at the deployment prevalence")
    return warnings


def evaluate(labels: list[LabelRow], calls: dict[tuple[str, str], StudyCall], options: EvaluationOptions, *,
             strata: dict[str, dict[str, str | None]] | None = None, results: list[dict] | None = None,
             truth_boxes: list[TruthBox] | None = None, mode: dict | None = None) -> dict:
    """The metrics document (written as metrics.json, printed by --json).

    `strata` maps study_uid to {"site", "manufacturer", "view"} (None where unknown);
    `results` (StudyResult records) are needed for FROC and to name threshold keys.
    """
    tables, without_call = label_tables(labels, calls)
    known = {t.label for t in tables}
    for option, names in (("--deployment-prevalence", options.deployment_prevalence),
                          ("--pick", [p.label for p in options.picks])):
        unknown = sorted(set(names) - known)
        if unknown:
            raise EvaluationInputError(f"{option}: no evaluated label {', '.join(unknown)} "
                                       f"(labels: {', '.join(sorted(known)) or 'none'})")
    warnings: list[str] = []
    if without_call:
        warnings.append(f"{len(without_call)} labelled stud{'y has' if len(without_call) == 1 else 'ies have'} "
                        f"no result and {'is' if len(without_call) == 1 else 'are'} left out "
                        f"(e.g. {', '.join(without_call[:3])})")
    doc: dict = {"mode": mode or {}, "settings": {
        "resamples": options.n_resamples, "seed": options.seed, "interval": "percentile bootstrap over studies, 95%",
        "tier_weights": options.tier_weights, "min_positives": options.min_positives}, "labels": {}}
    for t in tables:
        weights = tier_weights(t.tiers, options.tier_weights) if any(t.tiers) else None
        m = label_metrics(t.truth, t.predicted, options, scores=t.scores, weights=weights,
                          deployment_prevalence=options.deployment_prevalence.get(t.label))
        doc["labels"][t.label] = m
        warnings += _label_warnings(t.label, m, options.min_positives)
    doc["breakdowns"], strata_warnings = _breakdowns(tables, strata or {}, options)
    warnings += strata_warnings
    if options.sweep or options.picks:
        doc["sweep"] = {t.label: _sweep(t) for t in tables}
    if options.picks:
        doc["operating_points"] = _picks(tables, options.picks, results or [])
        warnings += [f"{p['pick']}: no threshold meets the constraint" for p in doc["operating_points"]
                     if p.get("threshold") is None]
    if truth_boxes:
        doc["froc"] = {label: froc(results or [], truth_boxes, label, options.min_iou)
                       for label in sorted({b.label for b in truth_boxes})}
        for label, f in doc["froc"].items():
            if f["truth_images_without_result"]:
                warnings.append(f"froc {label}: {len(f['truth_images_without_result'])} image(s) with ground-truth "
                                f"boxes have no result; their lesions count as missed")
    doc["warnings"] = warnings
    return doc


def _breakdowns(tables: list[LabelTable], strata: dict[str, dict[str, str | None]],
                options: EvaluationOptions) -> tuple[dict, list[str]]:
    out: dict = {}
    warnings = []
    for name in STRATA:
        values = {uid: (s.get(name) or None) for uid, s in strata.items()}
        if not any(values.values()):
            out[name] = {"unavailable": _why_unavailable(name)}
            warnings.append(f"no {name} breakdown: {_why_unavailable(name)}")
            continue
        out[name] = {}
        for t in tables:
            groups = np.array([values.get(uid) or UNKNOWN for uid in t.study_uids])
            for group in sorted(set(groups)):
                sel = groups == group
                out[name].setdefault(group, {})[t.label] = label_metrics(t.truth[sel], t.predicted[sel], options)
    return out, warnings


def _why_unavailable(name: str) -> str:
    if name == "manufacturer":
        return ("StudyResult records carry no manufacturer and LABELS.csv has no manufacturer column; "
                "add one to LABELS.csv to get this breakdown")
    return f"neither the results nor LABELS.csv give a {name}"


def _sweep(t: LabelTable) -> dict:
    return {"roc": roc_curve(t.truth, t.scores), "pr": pr_curve(t.truth, t.scores),
            "roc_auc": as_number(roc_auc(t.truth, t.scores)),
            "average_precision": as_number(average_precision(t.truth, t.scores)),
            "reliability": reliability(t.truth, t.scores)}


def _picks(tables: list[LabelTable], picks: tuple[Pick, ...], results: list[dict]) -> list[dict]:
    from radstream.evaluation.study_scores import rule_kind

    by_label = {t.label: t for t in tables}
    out = []
    for pick in picks:
        t = by_label[pick.label]
        point = pick_operating_point(pick, t.truth, t.scores) or {"pick": str(pick), "threshold": None}
        point["threshold_key"] = threshold_key(pick.label, rule_kind(results, pick.label))
        out.append(point)
    return out
