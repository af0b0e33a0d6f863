"""The one rule that turns a StudyResult into a study-level decision and score per label.

Decision: a study is positive for a label when any of its images has a finding
(a rule fired) with that label.
Score: the highest finding confidence for that label over the study's images; when
no finding has the label, the highest classifier probability for it, then the
highest fused box score for it; 0 when the study says nothing about the label.
NOT_ANALYSABLE images carry no findings, boxes or finding-model outputs (only their QC
models' outputs, whose labels are acquisition defects), so they count as silent.
"""

from __future__ import annotations

from dataclasses import dataclass

from radstream.evaluation.inputs import ScoreRow

UNKNOWN = "unknown"


@dataclass(frozen=True)
class StudyCall:
    """What the pipeline said about one study and one label."""

    positive: bool
    score: float
    source: str  # "finding", "classifier", "fused_box" or "none": where the score came from


def study_call(result: dict, label: str) -> StudyCall:
    findings = [f["confidence"] for img in result["images"] for f in img.get("findings") or [] if f["label"] == label]
    if findings:
        return StudyCall(True, float(max(findings)), "finding")
    probabilities = [c["probability"] for img in result["images"]
                     for c in img.get("classifier_outputs") or [] if c["label"] == label]
    if probabilities:
        return StudyCall(False, float(max(probabilities)), "classifier")
    boxes = [b["score"] for img in result["images"] for b in img.get("fused_boxes") or [] if b["label"] == label]
    if boxes:
        return StudyCall(False, float(max(boxes)), "fused_box")
    return StudyCall(False, 0.0, "none")


def calls_from_scores(rows: list[ScoreRow], thresholds: dict[str, float],
                      default_threshold: float) -> dict[tuple[str, str], StudyCall]:
    """--scores mode: a study is positive when its score is at or above the label's threshold (rules use >=)."""
    return {(r.study_uid, r.label): StudyCall(r.score >= thresholds.get(r.label, default_threshold), r.score, "score")
            for r in rows}


def study_site(result: dict) -> str:
    return result.get("site") or UNKNOWN


def study_view(result: dict) -> str:
    """The study's view positions, sorted and joined (a PA + lateral study is "LATERAL+PA")."""
    views = sorted({img.get("view_position") for img in result["images"] if img.get("view_position")})
    return "+".join(views) if views else UNKNOWN


def study_manufacturer(result: dict) -> str | None:
    """StudyResult (schema v1) carries no manufacturer; a later version may, so look but expect None."""
    return result.get("manufacturer") or None


def rule_kind(results: list[dict], label: str) -> str:
    """Which rule family serves a label: "suspected" (classifier) or "detected" (fused boxes)."""
    for result in results:
        for img in result["images"]:
            if any(c["label"] == label for c in img.get("classifier_outputs") or []):
                return "suspected"
    for result in results:
        for img in result["images"]:
            if any(b["label"] == label for b in img.get("fused_boxes") or []):
                return "detected"
    return "suspected"


def calls_from_results(results: list[dict], labels: set[str]) -> dict[tuple[str, str], StudyCall]:
    return {(r["study_uid"], label): study_call(r, label) for r in results for label in labels}


def study_strata(results: list[dict], label_rows: list) -> dict[str, dict[str, str | None]]:
    """site, manufacturer and view per study: from the results first, then LABELS.csv's optional columns."""
    strata: dict[str, dict[str, str | None]] = {}
    for row in label_rows:
        s = strata.setdefault(row.study_uid, {"site": None, "manufacturer": None, "view": None})
        for name in ("site", "manufacturer", "view"):
            s[name] = s[name] or getattr(row, name) or None
    for r in results:
        s = strata.setdefault(r["study_uid"], {"site": None, "manufacturer": None, "view": None})
        site, view = r.get("site") or None, study_view(r)
        s["site"] = site or s["site"]
        s["manufacturer"] = study_manufacturer(r) or s["manufacturer"]
        s["view"] = view if view != UNKNOWN else s["view"]
    return strata
