"""Schema-valid records of the five topics the gateway follows, for gateway tests (unit and e2e)."""

from __future__ import annotations

import time

from tests.factories import blob_ref, inference_result, metadata

STUDY = "1.2.826.0.1.3680043.10.1"
SOP = STUDY + ".1.1"


def _base(study: str, sop: str, site: str, key: str, frame: int = 0) -> dict:
    return {"schema_version": 1, "idempotency_key": key, "study_uid": study, "series_uid": study + ".1", "sop_uid": sop,
            "frame": frame, "site": site, "expected_instances": 1, "arrived_at": int(time.time() * 1000),
            "config_version": 3, "stage_ms": {}, "trace_id": None}


def decoded(study: str = STUDY, sop: str = SOP, site: str = "SITE_A", display: dict | None = None,
            modality: str = "CR", rows: int = 256, columns: int = 256, key: str | None = None) -> dict:
    return {**_base(study, sop, site, key or f"dec-{sop}"), "pixels": blob_ref("1" * 64, "application/x-npy"),
            "display": display, "metadata": metadata(modality=modality, rows=rows, columns=columns)}


def inferred(model: str = "detector-a", study: str = STUDY, sop: str = SOP, site: str = "SITE_A",
             boxes: list[list[float]] | None = None) -> dict:
    detections = [{"label": "nodule", "score": 0.8, "box": b} for b in (boxes or [])]
    return inference_result(model, "detection", sop=sop, study=study, detections=detections, site=site,
                            idempotency_key=f"inf-{sop}-{model}", metadata=metadata(rows=256, columns=256))


def fused_box(box: list[float], label: str = "nodule", score: float = 0.8) -> dict:
    return {"label": label, "score": score, "box": box,
            "sources": [{"model": "detector-a", "box": box, "score": score},
                        {"model": "detector-b", "box": box, "score": score - 0.1}]}


def finding_id(box: dict) -> str:
    """Stable per rule and box, as fuse makes it (there from the image, rule and box too)."""
    return f"{box['label']}-detected@" + ",".join(f"{v:g}" for v in box["box"])


def finding(box: dict, threshold: float = 0.5) -> dict:
    return {"rule_id": f"{box['label']}-detected", "rule_version": "1", "label": box["label"],
            "confidence": box["score"], "box": box["box"], "inputs": {"fused_box[0].score": box["score"]},
            "thresholds": {f"rule:{box['label']}-detected/min_score": threshold}, "finding_id": finding_id(box)}


def override(box: dict, study: str = STUDY, verdict: str = "REJECTED", by: str = "dr-lee", reason: str = "",
             created_at: int | None = None) -> dict:
    """A FindingOverride naming the finding of `box`."""
    return {"schema_version": 1, "finding_id": finding_id(box), "study_uid": study, "verdict": verdict, "by": by,
            "reason": reason, "created_at": created_at or int(time.time() * 1000)}


def fused(study: str = STUDY, sop: str = SOP, site: str = "SITE_A", boxes: list[dict] | None = None,
          threshold: float = 0.5, display: dict | None = None, key: str | None = None) -> dict:
    boxes = boxes or []
    return {**_base(study, sop, site, key or f"fus-{sop}"), "expected_models": ["detector-a", "detector-b"],
            "missing_models": [], "model_versions": {"detector-a": "1.0.0", "detector-b": "2.1.0"},
            "fused_boxes": boxes, "classifier_outputs": [],
            "findings": [finding(b, threshold) for b in boxes if b["score"] >= threshold],
            "display": display, "metadata": metadata(rows=256, columns=256)}


def study_result(study: str = STUDY, sops: list[str] | None = None, site: str = "SITE_A", boxes: list[dict] | None = None,
                 not_analysable: bool = False, key: str | None = None) -> dict:
    boxes = boxes or []
    images = [{
        "sop_uid": sop, "series_uid": study + ".1", "frame": 0,
        "status": "NOT_ANALYSABLE" if not_analysable else "ANALYSED",
        "qc_flags": ["body part HAND is outside the models' applicability (CHEST)"] if not_analysable else [],
        "missing_models": [], "fused_boxes": [] if not_analysable else boxes, "classifier_outputs": [],
        "findings": [] if not_analysable else [finding(b) for b in boxes if b["score"] >= 0.5],
        "modality": "CR", "body_part": "HAND" if not_analysable else "CHEST", "view_position": "PA",
        "display_uri": None, "stage_ms": {}, "latency_ms": 12.0,
    } for sop in (sops or [SOP])]
    return {"schema_version": 1, "idempotency_key": key or f"res-{study}", "study_uid": study, "site": site,
            "final": True, "completion": "expected_count_reached", "expected_instances": len(images),
            "images": images, "model_versions": {"detector-a": "1.0.0", "detector-b": "2.1.0"},
            "created_at": int(time.time() * 1000), "config_version": 3, "stage_ms": {}, "trace_id": None}
